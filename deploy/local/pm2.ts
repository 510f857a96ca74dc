import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { ProcessDescription, StartOptions } from 'pm2';

/**
 * The stack's PM2: its daemon lives in $RUN_DIR/pm2 (PM2_HOME), never in the
 * user's ~/.pm2, and `make down` kills it.
 */

export interface Pm2 {
  start(app: StartOptions): Promise<void>;
  remove(name: string): Promise<void>;
  list(): Promise<ProcessDescription[]>;
  kill(): Promise<void>;
  disconnect(): void;
}

export const pm2Home = (runDir: string) => join(runDir, 'pm2');

export async function connectPm2(runDir: string): Promise<Pm2> {
  // Loading PM2 creates the directories of PM2_HOME (~/.pm2 when unset), and the
  // daemon it spawns takes PM2_HOME from the environment before the option.
  process.env.PM2_HOME = pm2Home(runDir);
  const { default: PM2 } = await import('pm2');
  const pm2 = new (PM2 as unknown as { custom: new (options: { pm2_home: string }) => typeof PM2 }).custom({
    pm2_home: pm2Home(runDir),
  });
  await promisify<void>((done) => pm2.connect(done))();
  return {
    start: (app) => promisify<void>((done) => pm2.start(app, (error) => done(error)))(),
    remove: (name) => promisify<void>((done) => pm2.delete(name, (error) => done(error)))(),
    list: () => promisify(pm2.list.bind(pm2))(),
    kill: () => promisify<void>((done) => pm2.killDaemon((error) => done(error)))(),
    disconnect: () => pm2.disconnect(),
  };
}

/** Alive and not a zombie (an orphan of a killed daemon may wait long for init to reap it). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !['Z', 'X'].includes(stat.charAt(stat.lastIndexOf(')') + 2));
  } catch {
    return true;
  }
}

/** The daemon's pid, when one runs for this run directory. */
export function daemonPid(runDir: string): number | undefined {
  try {
    const pid = Number(readFileSync(join(pm2Home(runDir), 'pm2.pid'), 'utf8'));
    return pid > 0 && alive(pid) ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** True when the process runs with RUN_DIR=runDir, which every process of the stack has. */
function ofStack(pid: number, runDir: string): boolean {
  try {
    return readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').includes(`RUN_DIR=${runDir}`);
  } catch {
    return false;
  }
}

/**
 * Processes a daemon killed with -9 left running: PM2 writes each one's pid in
 * pids/; the RUN_DIR marker makes sure a reused pid is never taken for ours.
 */
export function orphans(runDir: string): number[] {
  const dir = join(pm2Home(runDir), 'pids');
  let files: string[];
  try {
    files = readdirSync(dir);
  } catch {
    return [];
  }
  return files
    .map((file) => Number(readFileSync(join(dir, file), 'utf8')))
    .filter((pid) => pid > 0 && alive(pid) && ofStack(pid, runDir));
}

/** SIGTERM, then SIGKILL after graceMs; resolves when none is alive. */
export async function endProcesses(pids: readonly number[], graceMs: number): Promise<void> {
  const signal = (name: NodeJS.Signals) =>
    pids.filter(alive).forEach((pid) => {
      try {
        process.kill(pid, name);
      } catch {
        // Already gone.
      }
    });
  signal('SIGTERM');
  const deadline = Date.now() + graceMs;
  while (pids.some(alive) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  signal('SIGKILL');
}
