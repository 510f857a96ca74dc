import { copyFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { httpOk, pollUntil } from './ports.js';
import { type InstanceState, writeFileAtomic } from './run-state.js';
import type { ServiceContext, UrlService } from './services.js';
import { superviseProcess } from './supervised-process.js';

/**
 * Prometheus for the local stack. The contract with prometheus/ (see
 * deploy/local/README.md): the runner copies prometheus.local.yml (as
 * prometheus.yml) and alerts.yml into $RUN_DIR/prometheus/ and keeps two
 * file_sd target files there, which the config reads by relative path:
 *   targets/backends.json  one target per instance, label instance=<INSTANCE_ID>
 *   targets/caddy.json     Caddy's admin address (its /metrics), label instance=caddy
 */

export const LOCAL_CONFIG = 'prometheus.local.yml';
export const ALERTS = 'alerts.yml';

interface FileSdGroup {
  targets: string[];
  labels: Record<string, string>;
}

export function backendTargets(instances: readonly InstanceState[]): FileSdGroup[] {
  return instances
    .filter((instance) => instance.status !== 'draining')
    .map((instance) => ({ targets: [`127.0.0.1:${instance.port}`], labels: { instance: instance.id } }));
}

function writeIfChanged(path: string, content: string): void {
  const current = existsSync(path) ? readFileSync(path, 'utf8') : undefined;
  if (current !== content) {
    writeFileAtomic(path, content);
  }
}

export interface PrometheusTargets {
  update(instances: readonly InstanceState[]): void;
}

export function prometheusTargets(dir: string, caddyAdminPort: number): PrometheusTargets {
  const targets = join(dir, 'targets');
  mkdirSync(targets, { recursive: true });
  const caddy: FileSdGroup[] = [{ targets: [`127.0.0.1:${caddyAdminPort}`], labels: { instance: 'caddy' } }];
  writeIfChanged(join(targets, 'caddy.json'), `${JSON.stringify(caddy, null, 2)}\n`);
  return {
    update(instances) {
      writeIfChanged(join(targets, 'backends.json'), `${JSON.stringify(backendTargets(instances), null, 2)}\n`);
    },
  };
}

/** Why Prometheus will not run, or undefined when it will. */
export function prometheusSkipReason(context: ServiceContext, hasBinary: boolean): string | undefined {
  const { settings } = context;
  if (settings.prometheus === 'false') {
    return 'PROMETHEUS_ENABLED=false';
  }
  if (!hasBinary) {
    return 'prometheus is not installed';
  }
  if (!existsSync(join(settings.prometheusConfigDir, LOCAL_CONFIG))) {
    return `${join(settings.prometheusConfigDir, LOCAL_CONFIG)} does not exist`;
  }
  return undefined;
}

export async function startPrometheus(context: ServiceContext): Promise<UrlService> {
  const { settings, paths } = context;
  mkdirSync(join(paths.prometheus, 'data'), { recursive: true });
  copyFileSync(join(settings.prometheusConfigDir, LOCAL_CONFIG), join(paths.prometheus, 'prometheus.yml'));
  const alerts = join(settings.prometheusConfigDir, ALERTS);
  if (existsSync(alerts)) {
    copyFileSync(alerts, join(paths.prometheus, ALERTS));
  }
  const listen = `127.0.0.1:${settings.prometheusPort}`;
  const child = superviseProcess({
    name: 'prometheus',
    command: 'prometheus',
    args: [
      `--config.file=${join(paths.prometheus, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(paths.prometheus, 'data')}`,
      `--web.listen-address=${listen}`,
    ],
    // RUN_DIR marks it as a process of this stack (see process-group.ts).
    env: { PATH: process.env.PATH, RUN_DIR: paths.dir },
    cwd: paths.prometheus,
    logFile: paths.log('prometheus'),
    logger: context.logger,
    restart: true,
    stopTimeoutMs: 10_000,
    onChange: context.onChange,
  });
  const url = `http://${listen}`;
  if (!(await pollUntil(() => httpOk(`${url}/-/ready`), 30_000))) {
    throw new Error(`Prometheus did not start; see ${paths.log('prometheus')}`);
  }
  return { url, process: child };
}
