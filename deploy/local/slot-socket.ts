import net from 'node:net';

/**
 * The listening socket of one instance slot, created (bound, not accepting)
 * by the supervisor and handed to every process of the slot as fd 3
 * (LISTEN_FD=3), which listens on it.
 *
 * Why: Caddy 2.6 cannot retry a request with a body even after a dial error
 * (Go's transport closes the body when the dial fails, and the retry then
 * reads a closed body), so a killed instance whose port refused connections
 * would fail every POST Caddy sends it until its next health check. Because
 * the supervisor keeps a reference, the socket stays in the listening state
 * while the slot is in use: connections that arrive while the instance is
 * dead wait in the kernel's accept queue and are answered by the replacement.
 * When a slot is scaled in, the supervisor closes its reference first, so the
 * socket closes with the instance's own close.
 */
export interface SlotSocket {
  /** The file descriptor to pass to a child (it is duplicated into the child). */
  readonly fd: number;
  close(): void;
}

interface TcpHandle {
  readonly fd: number;
  getsockname(out: { port?: number }): number;
  close(): void;
}

/**
 * Node has no public API for a bound socket that the creating process does not
 * accept on (a net.Server would compete with the child for connections); the
 * cluster module uses this internal for the same purpose.
 */
const createServerHandle = (
  net as unknown as {
    _createServerHandle(
      address: string,
      port: number,
      addressType: number,
      fd?: number,
      flags?: number,
    ): TcpHandle | number;
  }
)._createServerHandle;

export function bindSlotSocket(port: number, host = '127.0.0.1'): SlotSocket {
  if (typeof createServerHandle !== 'function') {
    throw new Error(`this Node.js (${process.version}) has no net._createServerHandle; the runner needs Node 20 or 22`);
  }
  const handle = createServerHandle(host, port, 4);
  if (typeof handle === 'number') {
    throw new Error(`cannot bind ${host}:${port} (errno ${handle})`);
  }
  // libuv defers EADDRINUSE from bind() to listen(), which happens in the child:
  // an unbound socket would listen on a random port. Check the bind took.
  const bound: { port?: number } = {};
  if (handle.getsockname(bound) !== 0 || bound.port !== port) {
    handle.close();
    throw new Error(`cannot bind ${host}:${port}: address in use`);
  }
  let open = true;
  return {
    fd: handle.fd,
    close() {
      if (open) {
        open = false;
        handle.close();
      }
    },
  };
}
