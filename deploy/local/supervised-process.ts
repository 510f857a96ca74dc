import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import type { Logger } from 'pino';

/**
 * One child process of the stack, its output appended to its own log file,
 * respawned with backoff when it dies unexpectedly (if asked to). Children
 * write straight to their log files, so they keep running and logging even if
 * the supervisor itself dies; `make down` then ends them by process group.
 */
export interface SupervisedProcessOptions {
  name: string;
  command: string;
  args: readonly string[];
  env: NodeJS.ProcessEnv;
  cwd: string;
  logFile: string;
  /** Open descriptors handed to the child as fd 3, 4…; they stay open in the supervisor. */
  inheritFds?: readonly number[];
  logger: Logger;
  restart: boolean;
  /** After the stop signal, how long to wait before SIGKILL. */
  stopTimeoutMs: number;
  /** The signal that asks it to stop (SIGTERM unless set; PostgreSQL's fast shutdown is SIGINT). */
  stopSignal?: NodeJS.Signals;
  /** Run as this user and group (when the supervisor is root): PostgreSQL refuses to run as root. */
  uid?: number;
  gid?: number;
  /** Called after every spawn and exit, so the owner can publish its state. */
  onChange: () => void;
}

export type ProcessStatus = 'running' | 'restarting' | 'stopping' | 'stopped';

export interface SupervisedProcess {
  readonly name: string;
  readonly pid: number | null;
  readonly status: ProcessStatus;
  readonly restarts: number;
  /** Resolves when the current child exits (at once if none runs). */
  exited(): Promise<void>;
  /** The stop signal (SIGKILL after stopTimeoutMs), never respawn; resolves once it has exited. */
  stop(): Promise<void>;
}

const MIN_BACKOFF_MS = 500;
const MAX_BACKOFF_MS = 30_000;
/** A child that lived this long counts as healthy again: the backoff restarts from the minimum. */
const STABLE_AFTER_MS = 30_000;

export function superviseProcess(options: SupervisedProcessOptions): SupervisedProcess {
  const log = options.logger.child({ process: options.name });
  let child: ChildProcess | undefined;
  let childExit: Promise<void> = Promise.resolve();
  let status: ProcessStatus = 'running';
  let restarts = 0;
  let failures = 0;
  let restartTimer: NodeJS.Timeout | undefined;

  function launch() {
    const logFd = openSync(options.logFile, 'a');
    const spawned = spawn(options.command, options.args, {
      cwd: options.cwd,
      env: options.env,
      stdio: ['ignore', logFd, logFd, ...(options.inheritFds ?? [])],
      ...(options.uid === undefined ? {} : { uid: options.uid }),
      ...(options.gid === undefined ? {} : { gid: options.gid }),
    });
    closeSync(logFd);
    child = spawned;
    const startedAt = Date.now();
    log.info({ pid: spawned.pid }, 'started');
    childExit = new Promise((resolve) => {
      let settled = false;
      const onGone = (code: number | null, signal: NodeJS.Signals | null, error?: Error) => {
        if (settled) {
          return;
        }
        settled = true;
        child = undefined;
        resolve();
        onExit(Date.now() - startedAt, code, signal, error);
      };
      spawned.once('exit', (code, signal) => onGone(code, signal));
      spawned.once('error', (error) => onGone(null, null, error));
    });
    options.onChange();
  }

  function onExit(livedMs: number, code: number | null, signal: NodeJS.Signals | null, error?: Error) {
    if (status === 'stopping' || status === 'stopped' || !options.restart) {
      status = 'stopped';
      log.info({ code, signal }, 'exited');
      options.onChange();
      return;
    }
    failures = livedMs >= STABLE_AFTER_MS ? 1 : failures + 1;
    const delay = Math.min(MIN_BACKOFF_MS * 2 ** (failures - 1), MAX_BACKOFF_MS);
    log.warn({ code, signal, error: error?.message, restartInMs: delay }, 'died unexpectedly; respawning');
    status = 'restarting';
    restartTimer = setTimeout(() => {
      restartTimer = undefined;
      if (status === 'restarting') {
        restarts += 1;
        status = 'running';
        launch();
      }
    }, delay);
    options.onChange();
  }

  launch();

  return {
    name: options.name,
    get pid() {
      return child?.pid ?? null;
    },
    get status() {
      return status;
    },
    get restarts() {
      return restarts;
    },
    exited: () => childExit,
    async stop() {
      clearTimeout(restartTimer);
      if (!child) {
        status = 'stopped';
        options.onChange();
        return;
      }
      status = 'stopping';
      options.onChange();
      const running = child;
      running.kill(options.stopSignal ?? 'SIGTERM');
      const killer = setTimeout(() => {
        log.warn({ pid: running.pid }, 'did not stop in time; SIGKILL');
        running.kill('SIGKILL');
      }, options.stopTimeoutMs);
      await childExit;
      clearTimeout(killer);
    },
  };
}
