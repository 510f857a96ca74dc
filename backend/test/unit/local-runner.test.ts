import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { writeTargets } from '../../../deploy/local/apps.js';
import { freePort, isListening, pollUntil } from '../../../deploy/local/ports.js';
import { DEFAULT_DATABASE_URL, ownCluster, probePostgres } from '../../../deploy/local/postgres.js';
import { loadStackSettings } from '../../../deploy/local/stack.js';

/**
 * The parts of the local runner (deploy/local) that need no PM2: its settings, the Prometheus
 * target file, and how it finds or runs PostgreSQL, on the machine's real server
 * (127.0.0.1:5432, as the tests' default DATABASE_URL wants it); the e2e tests run the rest.
 */

const uniqueName = () => `focus_probe_${process.pid}_${Date.now()}`;
const runDir = () => mkdtempSync(join(tmpdir(), 'focus-runner-'));

describe('stack settings', () => {
  it('knows which ports the user fixed (those never move to a free port)', () => {
    expect(loadStackSettings({}).fixed('CADDY_ADMIN_PORT')).toBe(false);
    expect(loadStackSettings({ CADDY_ADMIN_PORT: '2019' }).fixed('CADDY_ADMIN_PORT')).toBe(true);
    expect(loadStackSettings({ PROMETHEUS_PORT: '' }).fixed('PROMETHEUS_PORT')).toBe(false);
  });

  it('refuses a bad port, and a slot range past 65535, naming the variable', () => {
    expect(() => loadStackSettings({ PUBLIC_PORT: 'eighty' })).toThrow(/^PUBLIC_PORT: /);
    expect(() => loadStackSettings({ BACKEND_BASE_PORT: '65530', MAX_INSTANCES: '16' })).toThrow(/^BACKEND_BASE_PORT/);
  });
});

describe('Prometheus targets', () => {
  it('lists one target per instance of the wanted count, labelled with its id', () => {
    const settings = loadStackSettings({ RUN_DIR: runDir(), BACKEND_BASE_PORT: '3001' });
    mkdirSync(join(settings.RUN_DIR, 'prometheus/targets'), { recursive: true });
    writeTargets(settings, 2);
    expect(JSON.parse(readFileSync(join(settings.RUN_DIR, 'prometheus/targets/backends.json'), 'utf8'))).toEqual([
      { targets: ['127.0.0.1:3001'], labels: { instance: 'backend-1' } },
      { targets: ['127.0.0.1:3002'], labels: { instance: 'backend-2' } },
    ]);
  });
});

describe('PostgreSQL for make up', () => {
  it('finds the running server with a real SELECT 1, a missing database included (the backend creates it)', async () => {
    expect(await probePostgres(DEFAULT_DATABASE_URL)).toEqual({ state: 'ready' });
    expect(await probePostgres(`postgres://postgres@127.0.0.1:5432/${uniqueName()}`)).toEqual({ state: 'ready' });
  });

  it('tells nothing listening, or no PostgreSQL, from a server that refuses us', async () => {
    expect(await probePostgres(`postgres://postgres@127.0.0.1:${await freePort()}/focus`)).toEqual({ state: 'down' });
    expect(await probePostgres(`postgres://${uniqueName()}@127.0.0.1:5432/postgres`)).toMatchObject({
      state: 'refused',
      reason: expect.stringContaining(uniqueName().slice(0, 12)),
    });
    expect(await probePostgres('postgres://postgres@127.0.0.1:6379/focus', 1000)).toEqual({ state: 'down' });
  });

  it.skipIf(spawnSync('sh', ['-c', 'ls /usr/lib/postgresql/*/bin/initdb || command -v initdb']).status !== 0)(
    'runs a cluster of its own in the run directory (initdb once), which stops on SIGINT',
    async () => {
      const dir = runDir();
      const port = await freePort();
      const cluster = ownCluster(dir, port);
      const account = /^postgres:[^:]*:(\d+):(\d+):/m.exec(readFileSync('/etc/passwd', 'utf8'));
      const user = cluster.asPostgres && account ? { uid: Number(account[1]), gid: Number(account[2]) } : {};
      const [command, ...args] = cluster.command as [string, ...string[]];
      const server = spawn(command, args, { cwd: cluster.cwd, stdio: 'ignore', ...user });
      const url = `postgres://postgres@127.0.0.1:${port}/stack_db`;
      try {
        expect(await pollUntil(async () => (await probePostgres(url, 1000)).state === 'ready', 60_000, 300)).toBe(true);
        expect(readFileSync(join(dir, 'postgres/data/PG_VERSION'), 'utf8')).toMatch(/^\d+/);
      } finally {
        server.kill('SIGINT');
      }
      expect(await pollUntil(async () => !(await isListening(port)), 30_000)).toBe(true);
    },
    90_000,
  );
});
