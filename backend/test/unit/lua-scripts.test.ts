import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { redisScript } from '../../src/redis/redis-script.js';

const SRC = fileURLToPath(new URL('../../src/', import.meta.url));
const luaFiles = readdirSync(SRC, { recursive: true, encoding: 'utf8' })
  .filter((name) => name.endsWith('.lua'))
  .map((name) => join(SRC, name));

const keyUses = (text: string) => [...text.matchAll(/KEYS\[(\d+)\]/g)].map(([, index]) => Number(index));
const declaration = (text: string) => /^--! keys: (\d+)(\+?)$/m.exec(text);

describe('Lua script files', () => {
  it('finds the scripts', () => {
    expect(luaFiles.length).toBeGreaterThan(10);
  });

  for (const file of luaFiles) {
    const text = readFileSync(file, 'utf8');
    const declared = declaration(text);
    const name = relative(SRC, file);

    if (!declared) {
      it(`${name} (included by others) reads no KEYS: its callers pass keys in`, () => {
        expect(keyUses(text)).toEqual([]);
        expect(text).not.toContain('#KEYS');
      });
      continue;
    }

    it(`${name}: the declared key count is the one its KEYS[n] use`, () => {
      const count = Number(declared[1]);
      const uses = keyUses(text);
      if (declared[2] === '+') {
        // At least `count` keys, each of them used; any more are read after a check of #KEYS.
        expect(text).toContain('#KEYS');
        expect(Math.max(0, ...uses)).toBeGreaterThanOrEqual(count);
      } else {
        expect(Math.max(0, ...uses)).toBe(count);
        expect(text).not.toContain('#KEYS');
      }
    });

    it(`${name}: loads, with its includes`, () => {
      const script = redisScript(pathToFileURL(file));
      expect(script.keys.count).toBe(Number(declared[1]));
    });
  }

  it('refuses a call with another key count before it reaches Redis', async () => {
    const script = redisScript(new URL('../../src/usage/budget-reserve.lua', import.meta.url));
    const unreachable = {} as Redis;
    await expect(script.run(unreachable, ['a', 'b'], ['id', 1, 1000])).rejects.toThrow(/2 keys given, 1 declared/);
  });
});
