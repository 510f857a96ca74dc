import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type ConfigError, loadConfig, parseRedisEndpoints } from '../../src/config.js';
import { describeRedisTarget, redisTarget } from '../../src/redis/redis-target.js';

function problems(env: Record<string, string>): readonly string[] {
  try {
    loadConfig(env);
    return [];
  } catch (error) {
    return (error as ConfigError).problems;
  }
}

/** REDIS_* settings as every connection of a process gets them (no Redis needed). */
describe('the Redis target', () => {
  const dir = mkdtempSync(join(tmpdir(), 'focus-redis-target-'));
  const caFile = join(dir, 'ca.crt');
  writeFileSync(caFile, '-----BEGIN CERTIFICATE-----\nnot checked here\n-----END CERTIFICATE-----\n');
  const passwordFile = join(dir, 'password');
  writeFileSync(passwordFile, 's3cret-from-file\n');

  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('reads one server from REDIS_URL, REDIS_PASSWORD winning over the URL’s', () => {
    const target = redisTarget(
      loadConfig({ REDIS_URL: 'redis://app:url-pass@[::1]:6380/2', REDIS_PASSWORD: 'env-pass' }),
    );
    expect(target).toEqual({ host: '::1', port: 6380, db: 2, username: 'app', password: 'env-pass', tls: undefined });
    expect(describeRedisTarget(target)).toBe('redis://::1:6380/2');
  });

  it('asks the sentinels, with TLS and the CA for data nodes and sentinels alike', () => {
    const config = loadConfig({
      REDIS_URL: 'rediss://127.0.0.1',
      REDIS_SENTINELS: '10.0.0.1:26379, sentinel-b:26380,[fd00::3]:26381',
      REDIS_SENTINEL_NAME: 'focus',
      REDIS_PASSWORD_FILE: passwordFile,
      REDIS_TLS_CA_FILE: caFile,
    });
    const target = redisTarget(config);
    expect(target.sentinels).toEqual([
      { host: '10.0.0.1', port: 26379 },
      { host: 'sentinel-b', port: 26380 },
      { host: 'fd00::3', port: 26381 },
    ]);
    expect(target).toMatchObject({ name: 'focus', password: 's3cret-from-file', failoverDetector: true });
    expect(target.host).toBeUndefined();
    expect(target.tls).toEqual({ ca: expect.stringContaining('BEGIN CERTIFICATE') });
    expect(target.sentinelTLS).toBe(target.tls);
    expect(target.enableTLSForSentinelMode).toBe(true);
    expect(describeRedisTarget(target)).toBe('sentinel focus via 10.0.0.1:26379,sentinel-b:26380,fd00::3:26381');
  });

  it('reaches a Redis Cluster through the nodes given, with the password and TLS on every node', () => {
    const target = redisTarget(
      loadConfig({
        REDIS_URL: 'rediss://app@ignored-host',
        REDIS_CLUSTER_NODES: 'node-a:7000,10.0.0.2:7001',
        REDIS_PASSWORD: 'cluster-pass',
        REDIS_TLS_CA_FILE: caFile,
      }),
    );
    expect(target).toEqual({
      clusterNodes: [
        { host: 'node-a', port: 7000 },
        { host: '10.0.0.2', port: 7001 },
      ],
      username: 'app',
      password: 'cluster-pass',
      db: 0,
      tls: { ca: expect.stringContaining('BEGIN CERTIFICATE') },
    });
    expect(describeRedisTarget(target)).toBe('cluster via node-a:7000,10.0.0.2:7001 (tls)');
  });

  it('refuses bad settings with one line each', () => {
    expect(() => parseRedisEndpoints(' , ')).toThrow(/host:port/);
    expect(
      problems({
        REDIS_SENTINELS: '10.0.0.1',
        REDIS_SENTINEL_NAME: 'bad name',
        REDIS_TLS_CA_FILE: join(dir, 'missing.crt'),
      }),
    ).toEqual([
      'REDIS_SENTINELS: "10.0.0.1" is not host:port (got "10.0.0.1")',
      'REDIS_SENTINEL_NAME: letters, digits and ._- only (got "bad name")',
      `REDIS_TLS_CA_FILE: cannot read the file (got "${join(dir, 'missing.crt')}")`,
    ]);
    expect(problems({ REDIS_TLS_CA_FILE: caFile })).toEqual(['REDIS_TLS_CA_FILE: needs a rediss:// REDIS_URL']);
    expect(problems({ REDIS_CLUSTER_NODES: 'a:7000', REDIS_SENTINELS: 'b:26379' })).toEqual([
      'REDIS_CLUSTER_NODES: a Redis Cluster has no Sentinels; set one of REDIS_CLUSTER_NODES, REDIS_SENTINELS',
    ]);
    expect(problems({ REDIS_CLUSTER_NODES: 'a:7000', REDIS_URL: 'redis://127.0.0.1/3' })).toEqual([
      'REDIS_CLUSTER_NODES: a Redis Cluster has database 0 only; drop the database from REDIS_URL',
    ]);
    expect(problems({ REDIS_CLUSTER_NODES: 'a' })).toEqual(['REDIS_CLUSTER_NODES: "a" is not host:port (got "a")']);
    expect(problems({ REDIS_WAIT_TIMEOUT_MS: '500' })).toEqual([
      'REDIS_WAIT_TIMEOUT_MS: must be below REDIS_COMMAND_TIMEOUT_MS',
    ]);
    expect(problems({ REDIS_WAIT_TIMEOUT_MS: '500', REDIS_WAIT_REPLICAS: '0' })).toEqual([]);
    expect(problems({ REDIS_PASSWORD_FILE: join(dir, 'nope') })[0]).toMatch(/^REDIS_PASSWORD_FILE: cannot read/);
  });
});
