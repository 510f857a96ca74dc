import { Agent, request } from 'node:http';
import { sleep } from '../../src/shared/sleep.js';

/** One request of a steady load: when it started and ended, and how it went. */
export interface LoadRecord {
  startedAt: number;
  endedAt: number;
  /** 0 when no HTTP answer came (connection reset, socket hang up…). */
  status: number;
  instance: string | undefined;
  /** The error code of a non-200 answer, or the client-side error. */
  error: string | undefined;
}

export interface SteadyLoad {
  readonly records: readonly LoadRecord[];
  /** Lets the requests in flight finish, then resolves with every record. */
  stop(): Promise<LoadRecord[]>;
}

export interface SteadyLoadOptions {
  url: string;
  /** Requests in flight at any moment (one loop each, over keep-alive connections like a real client). */
  concurrency: number;
  /** The chat message of the n-th request. */
  message: (n: number) => string;
  /**
   * Each loop starts a request at most this often (200 ms: 5 a second per loop). A paced load
   * shows a lost request as well as a flat-out one, at a fraction of the CPU the stack would
   * spend on it, which the tests running beside it need.
   */
  everyMs?: number;
}

function errorCode(text: string): string {
  try {
    return (JSON.parse(text) as { error?: { code?: string } }).error?.code ?? text.slice(0, 100);
  } catch {
    return text.slice(0, 100);
  }
}

function postOnce(url: string, body: string, agent: Agent): Promise<Omit<LoadRecord, 'startedAt' | 'endedAt'>> {
  return new Promise((resolve) => {
    const req = request(
      url,
      {
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            instance: res.headers['x-instance-id'] as string | undefined,
            error: res.statusCode === 200 ? undefined : errorCode(Buffer.concat(chunks).toString('utf8')),
          }),
        );
        res.on('error', (error) => resolve({ status: 0, instance: undefined, error: error.message }));
      },
    );
    req.setTimeout(30_000, () => req.destroy(new Error('client timeout')));
    req.on('error', (error) => resolve({ status: 0, instance: undefined, error: error.message }));
    req.end(body);
  });
}

/** POST /api/chat in `concurrency` loops until stopped, recording every request. */
export function startSteadyLoad(options: SteadyLoadOptions): SteadyLoad {
  const agent = new Agent({ keepAlive: true, maxSockets: options.concurrency });
  const records: LoadRecord[] = [];
  let running = true;
  let sent = 0;

  const everyMs = options.everyMs ?? 200;

  async function loop() {
    while (running) {
      const n = sent;
      sent += 1;
      const startedAt = Date.now();
      const result = await postOnce(`${options.url}/api/chat`, JSON.stringify({ message: options.message(n) }), agent);
      records.push({ startedAt, endedAt: Date.now(), ...result });
      await sleep(startedAt + everyMs - Date.now());
    }
  }

  const loops = Array.from({ length: options.concurrency }, () => loop());
  return {
    records,
    async stop() {
      running = false;
      await Promise.all(loops);
      agent.destroy();
      return records;
    },
  };
}

/** The distinct instances that answered the given records. */
export function instancesOf(records: readonly LoadRecord[]): string[] {
  return [...new Set(records.map((record) => record.instance).filter((id): id is string => id !== undefined))].sort();
}
