import { execFile } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';

const run = promisify(execFile);
const PROMETHEUS_DIR = fileURLToPath(new URL('../../../prometheus/', import.meta.url));

async function promtool(...args: string[]): Promise<string> {
  const { stdout, stderr } = await run('promtool', args, { cwd: PROMETHEUS_DIR });
  return stdout + stderr;
}

const hasPromtool = await run('promtool', ['--version']).then(
  () => true,
  () => false,
);
if (!hasPromtool) {
  process.stderr.write('prometheus-config.test.ts: SKIPPED, promtool is not installed (apt-get install prometheus)\n');
}

describe.skipIf(!hasPromtool)('prometheus/: configuration, alert rules and their unit tests (promtool)', () => {
  it('prometheus.yml (compose) is valid and finds backends through Docker DNS', async () => {
    expect(await promtool('check', 'config', 'prometheus.yml')).toContain('SUCCESS: prometheus.yml is valid');
  });

  describe('prometheus.local.yml (make up)', () => {
    let runDir: string;

    beforeAll(async () => {
      // Laid out as the local runner lays out $RUN_DIR/prometheus/.
      runDir = await mkdtemp(join(tmpdir(), 'focus-prometheus-'));
      await mkdir(join(runDir, 'targets'));
      await copyFile(join(PROMETHEUS_DIR, 'prometheus.local.yml'), join(runDir, 'prometheus.yml'));
      await copyFile(join(PROMETHEUS_DIR, 'alerts.yml'), join(runDir, 'alerts.yml'));
      await writeFile(
        join(runDir, 'targets', 'backends.json'),
        JSON.stringify([{ targets: ['127.0.0.1:3001'], labels: { instance: 'backend-1' } }]),
      );
      await writeFile(join(runDir, 'targets', 'caddy.json'), JSON.stringify([{ targets: ['127.0.0.1:2019'] }]));
    });

    afterAll(async () => {
      await rm(runDir, { recursive: true, force: true });
    });

    it('is valid, with its file_sd targets and rules found relative to itself', async () => {
      const { stdout, stderr } = await run('promtool', ['check', 'config', 'prometheus.yml'], { cwd: runDir });
      expect(stdout).toContain('SUCCESS: prometheus.yml is valid');
      expect(stdout + stderr).not.toContain('WARNING');
    });
  });

  it('alerts.yml passes check rules', async () => {
    expect(await promtool('check', 'rules', 'alerts.yml')).toMatch(/SUCCESS: \d+ rules found/);
  });

  it('the rule unit tests pass', async () => {
    expect(await promtool('test', 'rules', 'tests/alerts.test.yml')).toContain('SUCCESS');
  });

  it('covers every alert in the unit tests and gives each a severity and a summary', async () => {
    const rules = parse(await readFile(join(PROMETHEUS_DIR, 'alerts.yml'), 'utf8')) as {
      groups: { rules: { alert: string; labels: { severity: string }; annotations: { summary: string } }[] }[];
    };
    const tests = await readFile(join(PROMETHEUS_DIR, 'tests', 'alerts.test.yml'), 'utf8');
    const alerts = rules.groups.flatMap((group) => group.rules);
    expect(alerts.length).toBeGreaterThanOrEqual(10);
    for (const rule of alerts) {
      expect(['critical', 'warning']).toContain(rule.labels.severity);
      expect(rule.annotations.summary).toBeTruthy();
      expect(tests, `${rule.alert} has a unit test`).toContain(`alertname: ${rule.alert}\n`);
    }
  });
});
