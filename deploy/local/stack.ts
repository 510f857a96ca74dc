import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connectPm2, daemonPid, type Pm2 } from './pm2.js';
import { httpOk } from './ports.js';
import { loadStackSettings, type StackSettings } from './settings.js';

export { logFile } from './apps.js';

/**
 * What make up found or started, in $RUN_DIR/stack.json (0600: it holds the instances' environment,
 * so make scale starts new ones as make up did), joined with what PM2 says of each process and each
 * instance's /readyz.
 */
export interface StackInfo {
  publicUrl: string;
  desiredInstances: number;
  /** BACKEND_BASE_PORT as make up had it: make status and make scale go by it, whatever their environment. */
  basePort: number;
  /** The URLs of redis, postgres, caddy (its admin API), and simulator and prometheus when they run. */
  services: Record<string, string>;
  env: Record<string, string>;
}

/** managed: a PM2 app of the stack (else it already ran) · pid: while PM2 has it online. */
export type Service = { url: string; managed: boolean; pid: number | null };
export type RunState = NonNullable<Awaited<ReturnType<typeof runState>>>;
/** starting: running, /readyz not yet 200 · ready · restarting: died, PM2 restarts it after its backoff. */
type InstanceStatus = 'starting' | 'ready' | 'restarting';

const stackFile = (runDir: string) => join(runDir, 'stack.json');
export const writeStack = (runDir: string, info: StackInfo) =>
  writeFileSync(stackFile(runDir), JSON.stringify(info, null, 2), { mode: 0o600 });
export const removeStack = (runDir: string) => rmSync(stackFile(runDir), { force: true });

export function readStack(runDir: string): StackInfo | undefined {
  try {
    return JSON.parse(readFileSync(stackFile(runDir), 'utf8')) as StackInfo;
  } catch {
    return undefined;
  }
}

export async function runState(pm2: Pm2, settings: StackSettings) {
  const [info, daemon] = [readStack(settings.RUN_DIR), daemonPid(settings.RUN_DIR)];
  if (!info || !daemon) {
    return undefined;
  }
  const processes = await pm2.list();
  const pidOf = (name: string) => {
    const found = processes.find((entry) => entry.name === name);
    return found?.pm2_env?.status === 'online' && found.pid ? found.pid : null;
  };
  const service = (name: string): Service | null => {
    const url = info.services[name];
    return url ? { url, managed: processes.some((entry) => entry.name === name), pid: pidOf(name) } : null;
  };
  const instances = processes
    .filter((entry) => entry.name?.startsWith('backend-'))
    .map(async ({ name = '', pm2_env }) => {
      const [slot, pid] = [Number(name.slice('backend-'.length)), pidOf(name)];
      const port = info.basePort + slot - 1;
      const ready = pid !== null && (await httpOk(`http://127.0.0.1:${port}/readyz`).catch(() => false));
      const status: InstanceStatus = pid === null ? 'restarting' : ready ? 'ready' : 'starting';
      return { slot, id: name, port, pid, status, restarts: pm2_env?.restart_time ?? 0 };
    });
  return {
    ...{ publicUrl: info.publicUrl, desiredInstances: info.desiredInstances, daemonPid: daemon },
    ...{ redis: service('redis') as Service, postgres: service('postgres') as Service },
    ...{ caddy: service('caddy') as Service, simulator: service('simulator'), prometheus: service('prometheus') },
    instances: (await Promise.all(instances)).sort((a, b) => a.slot - b.slot),
  };
}

/** The state of the stack in env's RUN_DIR, for tests and benches (undefined when nothing runs). */
export async function readRunState(env: Record<string, string | undefined>): Promise<RunState | undefined> {
  const settings = loadStackSettings({ ...process.env, ...env });
  if (!daemonPid(settings.RUN_DIR) || !readStack(settings.RUN_DIR)) {
    return undefined;
  }
  const pm2 = await connectPm2(settings.RUN_DIR);
  return runState(pm2, settings).finally(() => pm2.disconnect());
}
