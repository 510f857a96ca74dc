import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';

export interface RedisScript {
  /** What the script declares (`--! keys: 3`, or `--! keys: 2+` for at least 2). */
  readonly keys: { count: number; orMore: boolean };
  run(redis: Redis, keys: readonly string[], args: readonly (string | number)[]): Promise<unknown>;
}

export interface RedisScriptOptions {
  /** Numbers the script reads as locals, defined once in TypeScript. */
  constants?: Record<string, number>;
}

/** The shared clock (`now_ms()`, from Redis TIME), put before every script. */
const CLOCK = readFileSync(new URL('./clock.lua', import.meta.url), 'utf8');

const KEYS_LINE = /^--! keys: (\d+)(\+?)$/m;
const INCLUDE_LINE = /^--! include: (\S+\.lua)$/gm;

/** A script file's text with the files it includes (`--! include: name.lua`, beside it) put before it. */
function readWithIncludes(file: URL): string {
  const own = readFileSync(file, 'utf8');
  const included = [...own.matchAll(INCLUDE_LINE)].map(([, name]) => readWithIncludes(new URL(name as string, file)));
  return [...included, own].join('\n');
}

/**
 * A Lua script kept in its own file beside the module that runs it, read once
 * (at import) and sent as EVALSHA: its text goes to a Redis server only when
 * that server lacks it. The file declares its key count; a call with another
 * count fails here, before Redis.
 */
export function redisScript(file: URL, options: RedisScriptOptions = {}): RedisScript {
  const body = readWithIncludes(file);
  const declared = KEYS_LINE.exec(body);
  if (!declared) {
    throw new Error(`${file.pathname}: no "--! keys: N" line`);
  }
  const keys = { count: Number(declared[1]), orMore: declared[2] === '+' };
  const constants = Object.entries(options.constants ?? {}).map(([name, value]) => `local ${name} = ${value}\n`);
  const source = `${constants.join('')}${CLOCK}\n${body}`;
  const sha = createHash('sha1').update(source).digest('hex');
  const checked = (given: readonly string[]) => {
    if (keys.orMore ? given.length < keys.count : given.length !== keys.count) {
      throw new Error(`${file.pathname}: ${given.length} keys given, ${keys.count}${keys.orMore ? '+' : ''} declared`);
    }
    return given;
  };
  return {
    keys,
    async run(redis, given, args) {
      checked(given);
      try {
        return await redis.evalsha(sha, given.length, ...given, ...args);
      } catch (error) {
        if (error instanceof Error && error.message.startsWith('NOSCRIPT')) {
          return redis.eval(source, given.length, ...given, ...args);
        }
        throw error;
      }
    },
  };
}
