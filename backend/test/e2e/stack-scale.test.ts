import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pollUntil } from '../../../deploy/local/ports.js';
import { sleep } from '../../src/shared/sleep.js';
import { request } from '../helpers/http-client.js';
import { type LocalStack, startLocalStack } from '../helpers/local-stack.js';
import { instancesOf, type LoadRecord, startSteadyLoad } from '../helpers/steady-load.js';

/**
 * `make scale N=5` then `N=2` while a steady load flows through Caddy: no
 * request fails, new instances take traffic once ready, removed ones drain.
 * Prometheus (the runner's file_sd contract) follows every change.
 */

const PROMETHEUS_CONFIG = `
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: backends
    file_sd_configs: [{ files: [targets/backends.json], refresh_interval: 1s }]
  - job_name: caddy
    file_sd_configs: [{ files: [targets/caddy.json], refresh_interval: 1s }]
`;

interface ActiveTarget {
  labels: Record<string, string>;
  health: string;
}

let stack: LocalStack;

beforeAll(async () => {
  const configDir = mkdtempSync(join(tmpdir(), 'focus-prometheus-'));
  writeFileSync(join(configDir, 'prometheus.local.yml'), PROMETHEUS_CONFIG);
  stack = await startLocalStack(3, {
    PROMETHEUS_ENABLED: 'true',
    PROMETHEUS_CONFIG_DIR: configDir,
    // make up's own: the removed instances drain while the load goes on.
    SHUTDOWN_DRAIN_MS: '3000',
  });
});

afterAll(async () => {
  await stack?.make('down');
});

function targetFile(): string[] {
  const groups = JSON.parse(readFileSync(join(stack.runDir, 'prometheus/targets/backends.json'), 'utf8')) as {
    labels: { instance: string };
  }[];
  return groups.map((group) => group.labels.instance).sort();
}

/** Waits until Prometheus scrapes exactly `expected` backends, all up, and Caddy. */
async function prometheusScrapes(expected: string[]): Promise<boolean> {
  const url = (await stack.state()).prometheus?.url;
  return pollUntil(
    async () => {
      const answer = await request(`${url}/api/v1/targets?state=active`);
      const targets = (answer.json as { data: { activeTargets: ActiveTarget[] } }).data.activeTargets;
      const backends = targets.filter((target) => target.labels.job === 'backends');
      const caddy = targets.find((target) => target.labels.job === 'caddy');
      return (
        JSON.stringify(backends.map((target) => target.labels.instance).sort()) === JSON.stringify(expected) &&
        backends.every((target) => target.health === 'up') &&
        caddy?.health === 'up'
      );
    },
    45_000,
    500,
  );
}

const between = (records: readonly LoadRecord[], from: number, to: number) =>
  records.filter((record) => record.startedAt >= from && record.startedAt < to);

describe('make scale under steady load', () => {
  it('goes 3 → 5 → 2 with zero failed requests; traffic then reaches exactly 5, then exactly 2 instances', async () => {
    const load = startSteadyLoad({
      url: stack.publicUrl,
      concurrency: 6,
      message: (n) => `scale ${n} ${randomUUID()}`,
    });
    await sleep(1500);

    const scalingUp = Date.now();
    const five = await stack.make('scale', 'N=5');
    const scaledUp = Date.now();
    expect(five.output).toMatch(/5\/5 instances ready/);
    expect(targetFile()).toEqual(['backend-1', 'backend-2', 'backend-3', 'backend-4', 'backend-5']);
    expect(await prometheusScrapes(['backend-1', 'backend-2', 'backend-3', 'backend-4', 'backend-5'])).toBe(true);
    await sleep(1000);

    const scalingDown = Date.now();
    const two = await stack.make('scale', 'N=2');
    const scaledDown = Date.now();
    expect(two.output).toMatch(/2\/2 instances ready/);
    expect((await stack.state()).instances.map((instance) => instance.id)).toEqual(['backend-1', 'backend-2']);
    expect(targetFile()).toEqual(['backend-1', 'backend-2']);
    await sleep(3000);
    const records = await load.stop();

    const failed = records.filter((record) => record.status !== 200);
    process.stdout.write(
      `[scale] ${records.length} requests, ${failed.length} failed; make scale N=5 took ${scaledUp - scalingUp} ms, ` +
        `N=2 took ${scaledDown - scalingDown} ms\n`,
    );
    expect(failed.map((record) => `${record.status} ${record.error} ${record.instance ?? 'caddy'}`)).toEqual([]);
    expect(instancesOf(between(records, scaledUp, scalingDown))).toEqual([
      'backend-1',
      'backend-2',
      'backend-3',
      'backend-4',
      'backend-5',
    ]);
    expect(instancesOf(between(records, scaledDown, Number.POSITIVE_INFINITY))).toEqual(['backend-1', 'backend-2']);
    expect(between(records, scaledDown, Number.POSITIVE_INFINITY).length).toBeGreaterThan(30);
    expect(await prometheusScrapes(['backend-1', 'backend-2'])).toBe(true);
  });
});
