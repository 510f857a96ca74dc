import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { freePort, waitFor } from './backend-process.js';

const PROMETHEUS_DIR = fileURLToPath(new URL('../../../prometheus/', import.meta.url));

export interface FileSdGroup {
  targets: string[];
  labels?: Record<string, string>;
}

export interface PrometheusResponse<T> {
  status: 'success' | 'error';
  data: T;
  errorType?: string;
  error?: string;
}

export interface PrometheusServer {
  url: string;
  /** Rewrites targets/<name>.json, as the local runner does on `make up` / `make scale`. */
  writeTargets(name: 'backends' | 'caddy', groups: FileSdGroup[]): Promise<void>;
  api<T>(path: string, params?: Record<string, string>): Promise<PrometheusResponse<T>>;
  output(): string;
  close(): Promise<void>;
}

export async function hasPrometheus(): Promise<boolean> {
  return promisify(execFile)('prometheus', ['--version']).then(
    () => true,
    () => false,
  );
}

/**
 * A real Prometheus (the Debian package) laid out like the local stack's
 * $RUN_DIR/prometheus/: prometheus.local.yml as prometheus.yml, alerts.yml
 * beside it, file_sd targets under targets/. Listens on a free loopback port.
 */
export async function startPrometheus(targets: { backends: FileSdGroup[] }): Promise<PrometheusServer> {
  const dir = await mkdtemp(join(tmpdir(), 'focus-prometheus-'));
  await mkdir(join(dir, 'targets'));
  await mkdir(join(dir, 'data'));
  await copyFile(join(PROMETHEUS_DIR, 'prometheus.local.yml'), join(dir, 'prometheus.yml'));
  await copyFile(join(PROMETHEUS_DIR, 'alerts.yml'), join(dir, 'alerts.yml'));
  async function writeTargets(name: 'backends' | 'caddy', groups: FileSdGroup[]) {
    // Write then rename, so Prometheus never reads half a file.
    const file = join(dir, 'targets', `${name}.json`);
    await writeFile(`${file}.tmp`, JSON.stringify(groups));
    await rename(`${file}.tmp`, file);
  }
  await writeTargets('backends', targets.backends);
  await writeTargets('caddy', []);

  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child: ChildProcess = spawn(
    'prometheus',
    [
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
    ],
    { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    output += chunk.toString('utf8');
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    output += chunk.toString('utf8');
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));

  async function close() {
    if (child.exitCode === null) {
      child.kill('SIGTERM');
    }
    await exited;
    await rm(dir, { recursive: true, force: true });
  }

  try {
    await waitFor(
      async () => {
        if (child.exitCode !== null) {
          throw new Error(`prometheus exited with ${child.exitCode}: ${output}`);
        }
        return (await fetch(`${url}/-/ready`)).ok;
      },
      20_000,
      'prometheus to be ready',
    );
  } catch (error) {
    await close();
    throw error;
  }

  return {
    url,
    writeTargets,
    async api<T>(path: string, params: Record<string, string> = {}) {
      const response = await fetch(`${url}${path}?${new URLSearchParams(params).toString()}`);
      return (await response.json()) as PrometheusResponse<T>;
    },
    output: () => output,
    close,
  };
}
