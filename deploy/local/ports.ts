import { createConnection, createServer } from 'node:net';
import { sleep } from '../../backend/src/shared/sleep.js';

/** Loopback ports and polls, for the runner and the tests that drive it. */

/** Binds 127.0.0.1:port (0: any) and lets go: the port, or undefined when it is taken. */
function bindOnce(port: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const server = createServer().once('error', () => resolve(undefined));
    server.listen({ port, host: '127.0.0.1', exclusive: true }, () => {
      const bound = (server.address() as { port: number }).port;
      server.close(() => resolve(bound));
    });
  });
}

export const isPortFree = async (port: number) => (await bindOnce(port)) !== undefined;
/** A port the kernel says is free right now. */
export const freePort = async () => (await bindOnce(0)) as number;

/** True when something accepts TCP connections on 127.0.0.1:port. */
export function isListening(port: number, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ port, host: '127.0.0.1', timeout: timeoutMs });
    const done = (result: boolean) => {
      socket.destroy();
      resolve(result);
    };
    socket.once('connect', () => done(true));
    socket.once('timeout', () => done(false)).once('error', () => done(false));
  });
}

/** Polls `check` until it returns true; false once `timeoutMs` has passed. */
export async function pollUntil(check: () => Promise<boolean>, timeoutMs: number, intervalMs = 200): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check().catch(() => false))) {
    if (Date.now() >= deadline) {
      return false;
    }
    await sleep(intervalMs);
  }
  return true;
}

/** GET url; true on a 2xx within timeoutMs. */
export async function httpOk(url: string, timeoutMs = 1000): Promise<boolean> {
  const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  await response.body?.cancel();
  return response.ok;
}
