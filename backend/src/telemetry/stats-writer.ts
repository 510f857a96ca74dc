import type { Redis } from 'ioredis';
import type { CallerKeys } from '../redis/caller-key.js';
import { redisScript } from '../redis/redis-script.js';
import type { DegradationTracker } from './degradation.js';
import { createStatsBatch, type StatsBatch } from './stats-batch.js';
import {
  BUCKET_TTL_SECONDS,
  currentSecond,
  FIELD,
  latencyBucketIndex,
  latencyField,
  upstreamCallsField,
  upstreamTokensField,
  windowKey,
} from './stats-window.js';

export interface RequestSample {
  callerId: string;
  status: number;
  latencyMs: number;
}

/**
 * The writing half of the cluster stats: recording only adds to an in-memory
 * batch; the batch goes to Redis in one command per flush interval, off every
 * request's path. A Redis failure loses that batch and is reported to the tracker.
 */
export interface StatsWriter {
  recordRequest(sample: RequestSample): void;
  recordUpstream(provider: string, tokens: number): void;
  /** One response-cache lookup, a hit or a miss. */
  recordCacheLookup(hit: boolean): void;
  /** Writes what is pending now (before a read, at shutdown). Never rejects. */
  flush(): Promise<void>;
}

export interface StatsWriterOptions {
  redis: Redis;
  prefix: string;
  /** The active users' sorted set, in the window keys' cluster slot ({stats}). */
  activeKey: string;
  activeUserWindowSeconds: number;
  tracker: DegradationTracker;
  callerKeys: CallerKeys;
}

/** How long samples gather in memory before one write; the figures lag by at most this. */
export const FLUSH_INTERVAL_MS = 250;
/** The active users' members past the window go every this many flushes (about 5 s). */
const PRUNE_EVERY_FLUSHES = 20;
/** One command per flush: the window hashes and the active users share the {stats} slot. */
const FLUSH = redisScript(new URL('./stats-flush.lua', import.meta.url));

export function createStatsWriter(options: StatsWriterOptions): StatsWriter {
  const batch = createStatsBatch();
  const flusher = batchFlusher(options, batch);
  return {
    recordRequest(sample) {
      addRequest(batch, sample);
      flusher.schedule();
    },
    recordCacheLookup(hit) {
      batch.add(currentSecond(), hit ? FIELD.cacheHits : FIELD.cacheMisses, 1);
      flusher.schedule();
    },
    recordUpstream(provider, tokens) {
      const second = currentSecond();
      batch.add(second, upstreamCallsField(provider), 1);
      batch.add(second, upstreamTokensField(provider), tokens);
      flusher.schedule();
    },
    flush: () => flusher.flush(),
  };
}

function addRequest(batch: StatsBatch, sample: RequestSample): void {
  const nowMs = Date.now();
  const second = currentSecond(nowMs);
  batch.add(second, FIELD.requests, 1);
  batch.add(second, FIELD.latencyMicros, Math.round(sample.latencyMs * 1000));
  batch.add(second, latencyField(latencyBucketIndex(sample.latencyMs)), 1);
  if (sample.status >= 500) {
    batch.add(second, FIELD.serverErrors, 1);
  } else if (sample.status >= 400) {
    batch.add(second, FIELD.clientErrors, 1);
  }
  batch.touch(sample.callerId, nowMs);
}

/** One timer at a time: the first sample after a flush starts it, the flush it fires takes the whole batch. */
function batchFlusher(options: StatsWriterOptions, batch: StatsBatch) {
  let timer: NodeJS.Timeout | undefined;
  let flushes = 0;

  async function flush(): Promise<void> {
    clearTimeout(timer);
    timer = undefined;
    if (batch.empty) {
      return;
    }
    // Reads count by score, so members past the window only take room: pruned every few flushes.
    const prune = flushes % PRUNE_EVERY_FLUSHES === 0;
    flushes += 1;
    const { keys, args } = flushCommand(options, batch.take(), prune);
    try {
      await FLUSH.run(options.redis, keys, args);
      options.tracker.succeeded();
    } catch (error) {
      options.tracker.failed(error);
    }
  }

  return {
    schedule(): void {
      if (!timer) {
        timer = setTimeout(() => void flush(), FLUSH_INTERVAL_MS);
        timer.unref();
      }
    },
    flush,
  };
}

/** The flush script's keys and arguments: the active users (hashed: who is active matters, not their address), then each second's increments. */
function flushCommand(
  options: StatsWriterOptions,
  { buckets, callers }: ReturnType<StatsBatch['take']>,
  prune: boolean,
): { keys: string[]; args: (string | number)[] } {
  const keys = [options.activeKey];
  const args: (string | number)[] = [
    BUCKET_TTL_SECONDS,
    options.activeUserWindowSeconds,
    prune ? Date.now() - options.activeUserWindowSeconds * 1000 : '',
    callers.size,
    ...[...callers].flatMap(([id, atMs]) => [atMs, options.callerKeys.hash(id)]),
  ];
  for (const [second, fields] of buckets) {
    keys.push(windowKey(options.prefix, second));
    args.push(fields.size, ...[...fields].flat());
  }
  return { keys, args };
}
