import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type RedisServer, startRedisServer } from '../helpers/redis-server.js';
import { startTestBackend } from '../helpers/test-backend.js';

/** The start check's lines (component redis-durability), as messages. */
async function durabilityLines(redis: RedisServer): Promise<{ level: string; msg: string }[]> {
  const backend = await startTestBackend({ REDIS_URL: redis.url, GROQ_API_KEY: 'test-key' });
  try {
    await new Promise((resolve) => setTimeout(resolve, 300));
    return backend.logs.lines
      .map((line) => JSON.parse(line) as { level: string; msg: string; component?: string })
      .filter((line) => line.component === 'redis-durability');
  } finally {
    await backend.close();
  }
}

const warned = (line: { level: string }) => line.level === 'warn' || line.level === 'error';

/** At start an instance says once what the Redis in use can lose: eviction, no persistence, CONFIG refused. */
describe('the Redis durability check at start', () => {
  const dirs: string[] = [];
  const servers: RedisServer[] = [];

  async function redisWith(options: Parameters<typeof startRedisServer>[0]): Promise<RedisServer> {
    const server = await startRedisServer(options);
    servers.push(server);
    return server;
  }

  afterAll(async () => {
    await Promise.all(servers.map((server) => server.kill()));
    for (const dir of dirs) {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("is quiet about the stack's own Redis (append-only, noeviction)", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'focus-redis-durable-'));
    dirs.push(dir);
    const lines = await durabilityLines(await redisWith({ dataDir: dir }));
    expect(lines.filter(warned)).toEqual([]);
    expect(lines.map((line) => line.msg)).toEqual(['Redis keeps queued jobs: noeviction, append-only file']);
  });

  it('warns once when Redis evicts and does not persist', async () => {
    const lines = await durabilityLines(await redisWith({ args: ['--maxmemory-policy', 'allkeys-lru'] }));
    const warnings = lines.filter(warned).map((line) => line.msg);
    expect(warnings).toHaveLength(2);
    expect(warnings[0]).toMatch(/evicts keys under memory pressure/);
    expect(warnings[1]).toMatch(/does not persist/);
  });

  it('says once that CONFIG is refused (as on managed Redis) and still checks INFO', async () => {
    const lines = await durabilityLines(
      await redisWith({ args: ['--rename-command', 'CONFIG', '', '--maxmemory-policy', 'volatile-lru'] }),
    );
    const messages = lines.map((line) => line.msg);
    expect(messages.filter((msg) => /CONFIG GET refused/.test(msg))).toHaveLength(1);
    expect(messages.some((msg) => /evicts keys under memory pressure/.test(msg))).toBe(true);
    // INFO cannot tell whether RDB snapshots are set: a note, not a "does not persist" warning.
    expect(messages.some((msg) => /does not persist/.test(msg))).toBe(false);
    expect(messages.some((msg) => /no append-only file/.test(msg))).toBe(true);
  });
});
