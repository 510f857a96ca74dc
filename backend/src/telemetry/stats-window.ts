/**
 * The shape of the cluster-wide rolling window in Redis: one hash per second
 * (`<prefix>{stats}:w:<epoch second>`), incremented by every instance, read back
 * as the sum of the last WINDOW_SECONDS hashes. Per-second buckets keep the
 * window rolling (no minute-boundary jumps) and let each hash expire alone.
 */

export const WINDOW_SECONDS = 60;
/** Long enough to be read for a whole window after its second has passed. */
export const BUCKET_TTL_SECONDS = WINDOW_SECONDS * 2;

/** Upper bounds (ms) of the latency buckets used for the window percentiles. */
export const LATENCY_BOUNDS_MS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 20_000, 30_000];

/** Hash fields. Short names: they are written on every request. */
export const FIELD = {
  requests: 'n',
  clientErrors: 'e4',
  serverErrors: 'e5',
  latencyMicros: 'us',
  cacheHits: 'ch',
  cacheMisses: 'cm',
} as const;

/** Field of the latency bucket with this index; LATENCY_BOUNDS_MS.length is the overflow bucket. */
export const latencyField = (index: number) => `l${index}`;
export const upstreamCallsField = (provider: string) => `uc:${provider}`;
export const upstreamTokensField = (provider: string) => `ut:${provider}`;

export function latencyBucketIndex(latencyMs: number): number {
  const index = LATENCY_BOUNDS_MS.findIndex((bound) => latencyMs <= bound);
  return index === -1 ? LATENCY_BOUNDS_MS.length : index;
}

export const currentSecond = (nowMs = Date.now()) => Math.floor(nowMs / 1000);

// One Redis Cluster hash tag for every stats key: a flush writes them in one pipeline, a read fetches 60 at once.
export const windowKey = (prefix: string, second: number) => `${prefix}{stats}:w:${second}`;

/** The keys of the window ending at (and including) `second`, newest first. */
export function windowKeys(prefix: string, second: number): string[] {
  return Array.from({ length: WINDOW_SECONDS }, (_, age) => windowKey(prefix, second - age));
}
