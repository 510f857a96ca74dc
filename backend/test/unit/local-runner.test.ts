import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { freePort, isListening } from '../../../deploy/local/ports.js';
import {
  DEFAULT_DATABASE_URL,
  postgresBinaries,
  probePostgres,
  providePostgres,
  stopPostgres,
} from '../../../deploy/local/postgres.js';
import { ensureCommands } from '../../../deploy/local/prerequisites.js';
import { backendTargets } from '../../../deploy/local/prometheus.js';
import { loadStackSettings, upstreamList } from '../../../deploy/local/settings.js';
import { formatStatus } from '../../../deploy/local/status-text.js';

/**
 * The pure parts of the local runner (deploy/local), and how it finds or
 * starts PostgreSQL, on the machine's real server (127.0.0.1:5432, as the
 * tests' default DATABASE_URL wants it); the e2e tests run the rest for real.
 */

const uniqueName = () => `focus_probe_${process.pid}_${Date.now()}`;

describe('stack settings', () => {
  it('lists every slot as a Caddy upstream, from BACKEND_BASE_PORT', () => {
    const settings = loadStackSettings({ BACKEND_BASE_PORT: '4001', MAX_INSTANCES: '3' });
    expect(upstreamList(settings)).toBe('127.0.0.1:4001 127.0.0.1:4002 127.0.0.1:4003');
  });

  it('knows which ports the user fixed (those never move to a free port)', () => {
    expect(loadStackSettings({}).caddyAdminPortFixed).toBe(false);
    expect(loadStackSettings({ CADDY_ADMIN_PORT: '2019' }).caddyAdminPortFixed).toBe(true);
    expect(loadStackSettings({ PROMETHEUS_PORT: '' }).prometheusPortFixed).toBe(false);
  });

  it('refuses a bad port, and a slot range past 65535, naming the variable', () => {
    expect(() => loadStackSettings({ PUBLIC_PORT: 'eighty' })).toThrow(/PUBLIC_PORT/);
    expect(() => loadStackSettings({ BACKEND_BASE_PORT: '65530', MAX_INSTANCES: '16' })).toThrow(/BACKEND_BASE_PORT/);
  });
});

describe('Prometheus targets', () => {
  it('has one target per instance of the wanted count, labelled with its id', () => {
    const targets = backendTargets(loadStackSettings({ BACKEND_BASE_PORT: '3001' }), 2);
    expect(targets).toEqual([
      { targets: ['127.0.0.1:3001'], labels: { instance: 'backend-1' } },
      { targets: ['127.0.0.1:3002'], labels: { instance: 'backend-2' } },
    ]);
  });
});

describe('missing commands', () => {
  it('prints the exact install command instead of installing when not root', () => {
    const lines: string[] = [];
    const result = ensureCommands(['no-such-command-xyz'], (line) => lines.push(line), false);
    expect(result.ok).toBe(false);
    expect(result.ok ? '' : result.instructions).toContain(
      'sudo apt-get install -y --no-install-recommends no-such-command-xyz',
    );
    expect(lines).toEqual([]);
  });

  it('is satisfied when every command is on PATH', () => {
    expect(ensureCommands(['sh'], () => undefined, false)).toEqual({ ok: true });
  });
});

describe('PostgreSQL for make up', () => {
  it('finds the running server at the default URL with a real SELECT 1 (the backend creates a missing database)', async () => {
    expect(await probePostgres(DEFAULT_DATABASE_URL)).toMatchObject({ state: 'ready' });
    expect(await probePostgres(`postgres://postgres@127.0.0.1:5432/${uniqueName()}`)).toEqual({
      state: 'ready',
      databaseMissing: true,
    });
  });

  it('tells nothing listening from a server that refuses us', async () => {
    expect(await probePostgres(`postgres://postgres@127.0.0.1:${await freePort()}/focus`)).toEqual({ state: 'down' });
    const refused = await probePostgres(`postgres://${uniqueName()}@127.0.0.1:5432/postgres`);
    expect(refused.state).toBe('refused');
    // Something that listens but does not speak PostgreSQL is no database either.
    expect(await probePostgres('postgres://postgres@127.0.0.1:6379/focus', 1000)).not.toMatchObject({ state: 'ready' });
  });

  it('uses a DATABASE_URL that answers, and starts nothing', async () => {
    const context = runnerContext();
    const url = `postgres://postgres@127.0.0.1:5432/${uniqueName()}`;
    const service = await providePostgres(context, { DATABASE_URL: url });
    expect(service).toEqual({ url, managed: 'none', cluster: null });
  });

  it('refuses a DATABASE_URL whose server turns the stack away, naming the variable', async () => {
    const context = runnerContext();
    await expect(
      providePostgres(context, { DATABASE_URL: `postgres://${uniqueName()}@127.0.0.1:5432/focus` }),
    ).rejects.toThrow(/DATABASE_URL/);
  });

  it.skipIf(postgresBinaries() === undefined)(
    'starts a cluster of its own in the run directory when nothing answers, and stops it again',
    async () => {
      const context = runnerContext();
      const service = await providePostgres(context, {
        PATH: process.env.PATH,
        DATABASE_URL: `postgres://postgres@127.0.0.1:${await freePort()}/stack_db`,
      });
      try {
        expect(service.managed).toBe('own');
        expect(service.url).toMatch(/^postgres:\/\/postgres@127\.0\.0\.1:\d+\/stack_db$/);
        expect(await probePostgres(service.url)).toEqual({ state: 'ready', databaseMissing: true });
        expect(existsSync(join(context.runDir, 'postgres/data/PG_VERSION'))).toBe(true);
      } finally {
        expect(stopPostgres(context.runDir, service)).toMatch(/Stopped the stack's own PostgreSQL/);
      }
      const port = Number(new URL(service.url).port);
      expect(await isListening(port)).toBe(false);
    },
    90_000,
  );

  it('shows in make status what make up started and what it found running', () => {
    const base = {
      daemonPid: 1,
      publicUrl: 'http://127.0.0.1:8080',
      desiredInstances: 0,
      maxInstances: 16,
      redis: { url: 'redis://127.0.0.1:6379', managed: false, pid: null },
      simulator: null,
      caddy: { adminUrl: 'http://127.0.0.1:2019', pid: 2 },
      prometheus: null,
      instances: [],
    };
    const running = formatStatus(
      { ...base, postgres: { url: DEFAULT_DATABASE_URL, managed: 'none', cluster: null, pid: null } },
      '/tmp/run',
    );
    expect(running).toMatch(/postgres {4}postgres:\/\/postgres@127\.0\.0\.1:5432\/focus$/m);
    const system = formatStatus(
      {
        ...base,
        postgres: { url: DEFAULT_DATABASE_URL, managed: 'system', cluster: { version: '15', name: 'main' }, pid: null },
      },
      '/tmp/run',
    );
    expect(system).toContain('Debian cluster 15/main (started by make up)');
  });
});

function runnerContext() {
  return { runDir: mkdtempSync(join(tmpdir(), 'focus-runner-')), say: () => undefined };
}
