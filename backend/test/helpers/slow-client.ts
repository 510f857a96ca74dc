import { connect } from 'node:net';

/**
 * Opens a connection, writes `sent` and then nothing more, and resolves with
 * how long the server kept the connection open (and what it answered, if it
 * did). Gives up (resolves with closedAfterMs undefined) after `giveUpMs`.
 */
export function stallAfter(
  port: number,
  sent: string,
  giveUpMs: number,
): Promise<{ closedAfterMs: number | undefined; answer: string }> {
  return new Promise((resolve) => {
    const started = performance.now();
    let answer = '';
    const socket = connect(port, '127.0.0.1', () => socket.write(sent));
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ closedAfterMs: undefined, answer });
    }, giveUpMs);
    socket.on('data', (chunk: Buffer) => {
      answer += chunk.toString('utf8');
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ closedAfterMs: performance.now() - started, answer });
    });
  });
}

/** A POST whose body stops after six bytes of the hundred it announced. */
export const STALLED_BODY =
  'POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"mess';

/** A request whose headers never end. */
export const STALLED_HEADERS = 'POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty';
