import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * The TCP connections a process still holds to an upstream address: ESTAB or
 * CLOSE-WAIT (the peer closed, the process has not yet), by the process's own
 * end ("ip:port"). Read with `ss` (root sees every process), in the network
 * namespace of `netnsPid` when given (a container's). A proxy that still holds
 * a connection to a dead upstream may send a request on it; once none of its
 * connections of before the death is left, it has seen the death.
 */
export async function connectionsTo(
  upstream: string,
  options: { processName: string; netnsPid?: number },
): Promise<Set<string>> {
  const ss = ['ss', '-Htanp'];
  const [command, ...args] = options.netnsPid ? ['nsenter', '-t', String(options.netnsPid), '-n', ...ss] : ss;
  const { stdout } = await run(command as string, args);
  const open = new Set<string>();
  for (const line of stdout.split('\n')) {
    const [state, , , local, peer, ...rest] = line.trim().split(/\s+/);
    if ((state === 'ESTAB' || state === 'CLOSE-WAIT') && peer === upstream && local) {
      if (rest.join(' ').includes(`(("${options.processName}"`)) {
        open.add(local);
      }
    }
  }
  return open;
}
