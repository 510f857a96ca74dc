import { describe, expect, it } from 'vitest';
import { ensureCommands } from '../../../deploy/local/prerequisites.js';
import { backendTargets } from '../../../deploy/local/prometheus.js';
import { loadStackSettings, upstreamList } from '../../../deploy/local/settings.js';

/** The pure parts of the local runner (deploy/local); the e2e tests run the rest for real. */

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
  it('has one target per instance, labelled with its id, and leaves draining ones out', () => {
    const targets = backendTargets([
      { slot: 1, id: 'backend-1', port: 3001, pid: 11, status: 'ready', restarts: 0 },
      { slot: 2, id: 'backend-2', port: 3002, pid: null, status: 'restarting', restarts: 1 },
      { slot: 3, id: 'backend-3', port: 3003, pid: 13, status: 'draining', restarts: 0 },
    ]);
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
