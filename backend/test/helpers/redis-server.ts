import { type ChildProcess, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { durableRedisArgs } from '../../../deploy/local/redis-flags.js';
import { freePort, waitFor } from './backend-process.js';

export interface RedisServer {
  port: number;
  url: string;
  pid: number;
  /** SIGKILL: Redis vanishes mid-flight, as in a crash. */
  kill(): Promise<void>;
}

export interface RedisServerOptions {
  port?: number;
  /**
   * Run with the stack's own flags (deploy/local/redis-flags.ts: append-only,
   * noeviction) on this data directory; the same port and directory bring the
   * same data back. Without it: no persistence at all.
   */
  dataDir?: string;
  /** More redis-server arguments (--replicaof, --requirepass, --maxmemory-policy…). */
  args?: string[];
  /** Serve TLS only, on the port, with this certificate (clients need no certificate of their own). */
  tls?: { certFile: string; keyFile: string };
}

/**
 * A private redis-server on a free port, for tests that stop Redis: the shared
 * one on 6379 is never touched. Pass the port of a killed one to bring "the
 * same" Redis back (empty, or with its data when given the same dataDir).
 */
export async function startRedisServer(portOrOptions?: number | RedisServerOptions): Promise<RedisServer> {
  const options = typeof portOrOptions === 'number' ? { port: portOrOptions } : (portOrOptions ?? {});
  const port = options.port ?? (await freePort());
  const base = options.dataDir
    ? durableRedisArgs({ port, dir: options.dataDir })
    : ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'];
  const tls = options.tls
    ? [
        ...['--port', '0', '--tls-port', String(port)],
        ...['--tls-cert-file', options.tls.certFile, '--tls-key-file', options.tls.keyFile],
        ...['--tls-auth-clients', 'no'],
      ]
    : [];
  return spawnRedis('redis-server', [...base, ...tls, ...(options.args ?? [])], port, options.tls !== undefined);
}

export interface SentinelOptions {
  port?: number;
  /** Writable: Sentinel rewrites its config file as it learns the topology. */
  dir: string;
  masterName: string;
  masterPort: number;
  quorum: number;
  downAfterMs: number;
  failoverTimeoutMs: number;
  /** The data nodes' requirepass. */
  authPass?: string;
}

/** A redis-sentinel watching a primary on loopback. */
export async function startRedisSentinel(options: SentinelOptions): Promise<RedisServer> {
  const port = options.port ?? (await freePort());
  const file = join(options.dir, `sentinel-${port}.conf`);
  const { masterName: name } = options;
  writeFileSync(
    file,
    [
      `port ${port}`,
      'bind 127.0.0.1',
      `dir ${options.dir}`,
      `sentinel monitor ${name} 127.0.0.1 ${options.masterPort} ${options.quorum}`,
      `sentinel down-after-milliseconds ${name} ${options.downAfterMs}`,
      `sentinel failover-timeout ${name} ${options.failoverTimeoutMs}`,
      `sentinel parallel-syncs ${name} 1`,
      ...(options.authPass ? [`sentinel auth-pass ${name} ${options.authPass}`] : []),
      '',
    ].join('\n'),
  );
  return spawnRedis('redis-sentinel', [file], port);
}

async function spawnRedis(command: string, args: string[], port: number, tls = false): Promise<RedisServer> {
  const child: ChildProcess = spawn(command, args, { stdio: 'ignore' });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    await waitFor(
      () => ping(port, tls),
      10_000,
      `${command} on ${port}`,
      () => (child.exitCode !== null || child.signalCode !== null ? `${command} exited` : undefined),
    );
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    pid: child.pid as number,
    async kill() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
      }
      await exited;
    },
  };
}

/**
 * One RESP PING over a raw socket: no client library retrying behind our back.
 * NOAUTH counts as up (a password is set); LOADING (reading its append-only file) does not.
 */
function ping(port: number, tls: boolean): Promise<boolean> {
  return new Promise((resolve) => {
    const send = () => socket.write('PING\r\n');
    // Only "is it up": the certificate is the test's business.
    const socket: Socket = tls
      ? tlsConnect({ port, host: '127.0.0.1', rejectUnauthorized: false }, send)
      : createConnection({ port, host: '127.0.0.1' }, send);
    socket.setTimeout(500, () => socket.destroy());
    socket.once('data', (data) => {
      socket.destroy();
      const reply = data.toString('utf8');
      resolve(reply.startsWith('+PONG') || reply.startsWith('-NOAUTH'));
    });
    socket.once('error', () => resolve(false));
    socket.once('close', () => resolve(false));
  });
}
