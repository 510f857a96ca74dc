import { copyFileSync, existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { StartOptions } from 'pm2';
import { hasCommand } from './prerequisites.js';
import { type StackSettings, slotPort } from './settings.js';
import { app, instanceId } from './stack.js';

/**
 * Prometheus for the local stack. The contract with prometheus/ (see
 * deploy/local/README.md): the runner copies prometheus.local.yml (as
 * prometheus.yml) and alerts.yml into $RUN_DIR/prometheus/ and keeps two
 * file_sd target files there, which the config reads by relative path:
 *   targets/backends.json  one target per instance, label instance=<INSTANCE_ID>
 *   targets/caddy.json     Caddy's admin address (its /metrics), label instance=caddy
 */

const LOCAL_CONFIG = 'prometheus.local.yml';
const ALERTS = 'alerts.yml';

/** Write-then-rename, so Prometheus never reads half a file. */
function writeJson(path: string, value: unknown): void {
  writeFileSync(`${path}.tmp`, `${JSON.stringify(value, null, 2)}\n`);
  renameSync(`${path}.tmp`, path);
}

/** The instances 1…count (slots are fixed, so this changes only when make scale does). */
export function backendTargets(settings: StackSettings, count: number) {
  return Array.from({ length: count }, (_, slot) => ({
    targets: [`127.0.0.1:${slotPort(settings, slot)}`],
    labels: { instance: instanceId(slot) },
  }));
}

export function writeTargets(settings: StackSettings, count: number): void {
  const dir = join(settings.runDir, 'prometheus/targets');
  if (existsSync(dir)) {
    writeJson(join(dir, 'backends.json'), backendTargets(settings, count));
  }
}

/** Why Prometheus will not run, or undefined when it will. */
export function prometheusSkipReason(settings: StackSettings): string | undefined {
  if (settings.prometheus === 'false') {
    return 'PROMETHEUS_ENABLED=false';
  }
  if (!hasCommand('prometheus')) {
    return 'prometheus is not installed';
  }
  const config = join(settings.prometheusConfigDir, LOCAL_CONFIG);
  return existsSync(config) ? undefined : `${config} does not exist`;
}

export function prometheusApp(settings: StackSettings, count: number): StartOptions {
  const dir = join(settings.runDir, 'prometheus');
  mkdirSync(join(dir, 'targets'), { recursive: true });
  mkdirSync(join(dir, 'data'), { recursive: true });
  copyFileSync(join(settings.prometheusConfigDir, LOCAL_CONFIG), join(dir, 'prometheus.yml'));
  if (existsSync(join(settings.prometheusConfigDir, ALERTS))) {
    copyFileSync(join(settings.prometheusConfigDir, ALERTS), join(dir, ALERTS));
  }
  const caddy = [{ targets: [`127.0.0.1:${settings.caddyAdminPort}`], labels: { instance: 'caddy' } }];
  writeJson(join(dir, 'targets/caddy.json'), caddy);
  writeTargets(settings, count);
  return app(
    settings.runDir,
    'prometheus',
    'prometheus',
    [
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${settings.prometheusPort}`,
    ],
    { cwd: dir, env: { PATH: process.env.PATH ?? '' } },
  );
}
