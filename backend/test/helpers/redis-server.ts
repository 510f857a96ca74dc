import { type ChildProcess, spawn } from 'node:child_process';
import { createConnection } from 'node:net';
import { freePort, waitFor } from './backend-process.js';

export interface RedisServer {
  port: number;
  url: string;
  /** SIGKILL: Redis vanishes mid-flight, as in a crash. */
  kill(): Promise<void>;
}

/**
 * A private, throw-away redis-server on a free port (no persistence), for tests
 * that stop Redis: the shared one on 6379 is never touched. Pass the port of a
 * killed one to bring "the same" Redis back (empty).
 */
export async function startRedisServer(port?: number): Promise<RedisServer> {
  port ??= await freePort();
  const child: ChildProcess = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { stdio: 'ignore' },
  );
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = `redis://127.0.0.1:${port}`;
  try {
    await waitFor(
      () => ping(port),
      10_000,
      `redis-server on ${port}`,
      () => (child.exitCode !== null || child.signalCode !== null ? 'redis-server exited' : undefined),
    );
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
  return {
    port,
    url,
    async kill() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
      }
      await exited;
    },
  };
}

/** One RESP PING over a raw socket: no client library retrying behind our back. */
function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ port, host: '127.0.0.1' }, () => socket.write('PING\r\n'));
    socket.setTimeout(500, () => socket.destroy());
    socket.once('data', (data) => {
      socket.destroy();
      resolve(data.toString('utf8').startsWith('+PONG'));
    });
    socket.once('error', () => resolve(false));
    socket.once('close', () => resolve(false));
  });
}
