import { type GroqSimulator, type SimulatorBehaviour, startGroqSimulator } from '../../sim/groq-simulator.js';
import { request } from './http-client.js';
import { deletePrefix, startTestBackend, type TestBackend, testPrefix } from './test-backend.js';

export interface UpstreamCluster {
  primary: GroqSimulator;
  /** Undefined when the cluster runs without a fallback provider. */
  fallback: GroqSimulator | undefined;
  backends: TestBackend[];
  /** The backend that serves request number `index` (round robin). */
  at(index: number): TestBackend;
  close(): Promise<void>;
}

export interface UpstreamClusterOptions {
  primary?: Partial<SimulatorBehaviour>;
  /** false: no fallback provider at all. */
  fallback?: Partial<SimulatorBehaviour> | false;
  env?: Record<string, string>;
  instances?: number;
  /** The quota window of the simulators and the backends (QUOTA_WINDOW_MS); Groq's 60 s by default. */
  windowMs?: number;
}

/**
 * A primary Groq simulator (the free tier's 30 RPM / 6,000 TPM unless told
 * otherwise), a fallback simulator labelled "fallback", and N in-process
 * backends sharing one Redis prefix, so they share quota, cache and locks.
 */
export async function startUpstreamCluster(
  name: string,
  options: UpstreamClusterOptions = {},
): Promise<UpstreamCluster> {
  const windowMs = options.windowMs ?? 60_000;
  const primary = await startGroqSimulator({ rpm: 30, tpm: 6000, label: 'primary', windowMs, ...options.primary });
  const fallback =
    options.fallback === false
      ? undefined
      : await startGroqSimulator({ label: 'fallback', windowMs, ...options.fallback });
  const prefix = testPrefix(name);
  const backends: TestBackend[] = [];
  for (let index = 0; index < (options.instances ?? 3); index += 1) {
    backends.push(
      await startTestBackend({
        REDIS_PREFIX: prefix,
        INSTANCE_ID: `${name}-${index + 1}`,
        GROQ_BASE_URL: primary.url,
        GROQ_API_KEY: 'test-key',
        GROQ_RPM: '30',
        GROQ_TPM: '6000',
        QUOTA_WINDOW_MS: String(windowMs),
        // The per-caller limit is not what these tests are about.
        MAX_REQUESTS_PER_MINUTE: '100000',
        POLLS_PER_MINUTE: '100000',
        ...(fallback
          ? {
              FALLBACK_BASE_URL: `${fallback.url}/v1`,
              FALLBACK_API_KEY: 'fallback-key',
              FALLBACK_MODEL: 'fallback-model',
            }
          : {}),
        ...options.env,
      }),
    );
  }
  return {
    primary,
    fallback,
    backends,
    at: (index) => backends[index % backends.length] as TestBackend,
    async close() {
      await deletePrefix((backends[0] as TestBackend).runtime, prefix);
      await Promise.all(backends.map((backend) => backend.close()));
      await primary.close();
      await fallback?.close();
    },
  };
}

/** One sample of a metric from a backend's /metrics, e.g. metricValue(url, 'focus_circuit_state', {provider: 'groq'}). */
export async function metricValue(
  baseUrl: string,
  name: string,
  labels: Record<string, string> = {},
): Promise<number | undefined> {
  const { text } = await request(`${baseUrl}/metrics`);
  const wanted = Object.entries(labels).map(([key, value]) => `${key}="${value}"`);
  for (const line of text.split('\n')) {
    const [series, value] = line.split(' ');
    if (series === undefined || value === undefined || !(series === name || series.startsWith(`${name}{`))) {
      continue;
    }
    if (wanted.every((pair) => series.includes(pair))) {
      return Number(value);
    }
  }
  return undefined;
}

/** The callers of a burst: distinct client addresses, sent as X-Forwarded-For (believed from loopback). */
export const callerIp = (index: number) => `198.51.100.${(index % 250) + 1}`;
