import type { Logger } from 'pino';
import { httpOk } from './ports.js';
import type { InstanceState, RunPaths } from './run-state.js';
import { type StackSettings, slotPort } from './settings.js';
import { bindSlotSocket, type SlotSocket } from './slot-socket.js';
import { type SupervisedProcess, superviseProcess } from './supervised-process.js';

/**
 * The N backend instances. Instance k lives in slot k (port BACKEND_BASE_PORT + k),
 * one of the fixed upstreams Caddy health-checks, so scaling is starting and
 * stopping processes, never reconfiguring Caddy. Scaling down removes the
 * highest slots: each gets SIGTERM, reports not-ready (Caddy stops sending
 * within a health interval), finishes what it holds and exits. Each slot's
 * listening socket belongs to the pool while the slot is in use (slot-socket.ts),
 * so a crashed instance's port queues connections for its replacement.
 */
export interface InstancePoolOptions {
  settings: StackSettings;
  /** The environment of every instance; PORT, HOST and INSTANCE_ID are set per slot. */
  env: NodeJS.ProcessEnv;
  paths: RunPaths;
  logger: Logger;
  onChange: () => void;
}

export interface InstancePool {
  scaleTo(count: number): void;
  snapshot(): InstanceState[];
  /** The desired count runs, every one of them ready, and nothing is still draining. */
  settled(): boolean;
  stop(): Promise<void>;
}

interface Slot {
  readonly index: number;
  readonly id: string;
  readonly port: number;
  readonly socket: SlotSocket;
  readonly process: SupervisedProcess;
  /** The pid whose /readyz last answered 200: a respawned process must prove itself again. */
  readyPid: number | null;
  draining: boolean;
}

const READINESS_POLL_MS = 1000;
const READINESS_TIMEOUT_MS = 1000;
const START_RETRY_MS = 5000;

export function instanceId(slotIndex: number): string {
  return `backend-${slotIndex + 1}`;
}

export function createInstancePool(options: InstancePoolOptions): InstancePool {
  const { settings, paths, logger } = options;
  const slots = new Map<number, Slot>();
  // `||`: an empty value means unset, as in the instances' own config.
  const shutdownTimeoutMs = Number(options.env.SHUTDOWN_TIMEOUT_MS || 15_000);
  let desired = 0;
  let stopping = false;
  let polling = false;
  let retryTimer: NodeJS.Timeout | undefined;

  function start(index: number) {
    const id = instanceId(index);
    const port = slotPort(settings, index);
    const socket = bindSlotSocket(port);
    const supervised = superviseProcess({
      name: id,
      command: process.execPath,
      // The compiled build (make up runs npm run build first): no TypeScript toolchain per instance.
      args: ['dist/src/main.js'],
      cwd: settings.repoRoot,
      env: { ...options.env, HOST: '127.0.0.1', PORT: String(port), INSTANCE_ID: id, LISTEN_FD: '3' },
      logFile: paths.log(id),
      inheritFds: [socket.fd],
      logger,
      restart: true,
      // The instance bounds its own graceful shutdown; this only catches a hung one.
      stopTimeoutMs: shutdownTimeoutMs + 5000,
      onChange: options.onChange,
    });
    slots.set(index, { index, id, port, socket, process: supervised, readyPid: null, draining: false });
  }

  function drain(slot: Slot) {
    slot.draining = true;
    logger.info({ instance: slot.id }, 'scaling in: draining');
    // Ours first: the socket then closes when the instance stops listening after its drain.
    slot.socket.close();
    void slot.process.stop().then(() => {
      slots.delete(slot.index);
      reconcile();
      options.onChange();
    });
  }

  function reconcile() {
    if (stopping) {
      return;
    }
    for (let index = 0; index < desired; index += 1) {
      // A slot still draining from an earlier scale-in is restarted once it has exited.
      if (!slots.has(index)) {
        try {
          start(index);
        } catch (error) {
          // Its port was taken since make up checked it: try again shortly rather than die.
          logger.error({ instance: instanceId(index), error: (error as Error).message }, 'cannot start; retrying');
          retryTimer ??= setTimeout(() => {
            retryTimer = undefined;
            reconcile();
          }, START_RETRY_MS);
        }
      }
    }
    for (const slot of slots.values()) {
      if (slot.index >= desired && !slot.draining) {
        drain(slot);
      }
    }
    options.onChange();
  }

  async function pollReadiness() {
    if (polling) {
      return;
    }
    polling = true;
    try {
      await Promise.all(
        [...slots.values()]
          .filter((slot) => !slot.draining)
          .map(async (slot) => {
            const pid = slot.process.pid;
            const ok =
              pid !== null &&
              (await httpOk(`http://127.0.0.1:${slot.port}/readyz`, READINESS_TIMEOUT_MS).catch(() => false));
            const readyPid = ok ? pid : null;
            if (readyPid !== slot.readyPid) {
              slot.readyPid = readyPid;
              logger.info({ instance: slot.id, pid, ready: ok }, ok ? 'ready' : 'not ready');
              options.onChange();
            }
          }),
      );
    } finally {
      polling = false;
    }
  }

  const poller = setInterval(() => void pollReadiness(), READINESS_POLL_MS);

  function status(slot: Slot): InstanceState['status'] {
    if (slot.draining) {
      return 'draining';
    }
    if (slot.process.status === 'restarting') {
      return 'restarting';
    }
    return slot.readyPid !== null && slot.readyPid === slot.process.pid ? 'ready' : 'starting';
  }

  return {
    scaleTo(count) {
      desired = count;
      reconcile();
    },
    snapshot() {
      return [...slots.values()]
        .sort((a, b) => a.index - b.index)
        .map((slot) => ({
          slot: slot.index + 1,
          id: slot.id,
          port: slot.port,
          pid: slot.process.pid,
          status: status(slot),
          restarts: slot.process.restarts,
        }));
    },
    settled() {
      const all = [...slots.values()];
      return all.length === desired && all.every((slot) => status(slot) === 'ready');
    },
    async stop() {
      stopping = true;
      clearInterval(poller);
      clearTimeout(retryTimer);
      await Promise.all(
        [...slots.values()].map((slot) => {
          slot.socket.close();
          return slot.process.stop();
        }),
      );
      slots.clear();
      options.onChange();
    },
  };
}
