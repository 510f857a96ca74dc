import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { ProcessDescription, StartOptions } from 'pm2';

/** The stack's PM2: its daemon lives in $RUN_DIR/pm2 (PM2_HOME), never in ~/.pm2; make down kills it. */

export const pm2Home = (runDir: string) => join(runDir, 'pm2');
export type Pm2 = Awaited<ReturnType<typeof connectPm2>>;

export async function connectPm2(runDir: string) {
  // Loading PM2 creates PM2_HOME (~/.pm2 when unset), and the daemon it spawns reads it from the environment.
  process.env.PM2_HOME = pm2Home(runDir);
  const { default: PM2 } = await import('pm2');
  const pm2 = new (PM2 as unknown as { custom: new (options: object) => typeof PM2 }).custom({
    pm2_home: pm2Home(runDir),
  });
  const call = (run: (done: (error: Error | null) => void) => void) => promisify(run)() as Promise<void>;
  await call((done) => pm2.connect((error) => done(error)));
  return {
    start: (app: StartOptions) => call((done) => pm2.start(app, (error) => done(error))),
    remove: (name: string) => call((done) => pm2.delete(name, (error) => done(error))),
    list: promisify(pm2.list.bind(pm2)) as () => Promise<ProcessDescription[]>,
    kill: () => call((done) => pm2.killDaemon((error) => done(error))),
    disconnect: () => pm2.disconnect(),
  };
}

/** Alive and not a zombie (an orphan of a killed daemon may wait long for init to reap it). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !['Z', 'X'].includes(stat.charAt(stat.lastIndexOf(')') + 2));
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ENOENT';
  }
}

function livePid(file: string, runDir?: string): number | undefined {
  try {
    const pid = Number(readFileSync(file, 'utf8'));
    const ours = !runDir || readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').includes(`RUN_DIR=${runDir}`);
    return pid > 0 && alive(pid) && ours ? pid : undefined;
  } catch {
    return undefined;
  }
}

export const daemonPid = (runDir: string) => livePid(join(pm2Home(runDir), 'pm2.pid'));

/** What a daemon killed with -9 left running: the pids PM2 wrote, each checked for the stack's RUN_DIR. */
export function orphans(runDir: string): number[] {
  const dir = join(pm2Home(runDir), 'pids');
  const pids = (existsSync(dir) ? readdirSync(dir) : []).map((file) => livePid(join(dir, file), runDir));
  return pids.filter((pid) => pid !== undefined);
}

/** SIGINT (PM2's stop signal), then SIGKILL after graceMs; resolves when none is alive. */
export async function endProcesses(pids: readonly number[], graceMs: number): Promise<void> {
  const signal = (name: string) => spawnSync('kill', ['-s', name, ...pids.filter(alive).map(String)]);
  signal('SIGINT');
  for (const deadline = Date.now() + graceMs; pids.some(alive) && Date.now() < deadline; ) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  signal('SIGKILL');
}
