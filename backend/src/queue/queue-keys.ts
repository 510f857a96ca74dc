import { randomUUID } from 'node:crypto';

/** The BullMQ queue every instance produces to and consumes from. */
export const CHAT_QUEUE_NAME = 'chat';

/** BullMQ's own key prefix under ours, so one REDIS_PREFIX namespaces everything. */
export const bullPrefix = (redisPrefix: string) => `${redisPrefix}bull`;

/**
 * Our keys beside BullMQ's:
 * - line: the jobs not yet started, in the order BullMQ will run them (sorted
 *   set, score = arrival time, or due time for a delayed job, in µs), so a
 *   position is one ZRANK instead of a scan of the wait list
 * - seq: the last arrival place handed out (keeps arrivals strictly ordered)
 * - job: the public record of one job (owner, state, result or error), small
 *   enough to read on every poll, unlike the BullMQ hash that holds the message
 * - idem: Idempotency-Key → job id, per caller
 * - stats: the cluster-wide moving averages behind estimatedTime
 */
export interface QueueKeys {
  line: string;
  seq: string;
  stats: string;
  job(jobId: string): string;
  idempotency(ownerHash: string, keyHash: string): string;
}

export function queueKeys(redisPrefix: string): QueueKeys {
  const base = `${redisPrefix}queue:`;
  return {
    line: `${base}line`,
    seq: `${base}seq`,
    stats: `${base}stats`,
    job: (jobId) => `${base}job:${jobId}`,
    idempotency: (ownerHash, keyHash) => `${base}idem:${ownerHash}:${keyHash}`,
  };
}

// A random (v4) UUID: 122 random bits, so ids cannot be guessed or enumerated.
const JOB_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

export const newJobId = (): string => randomUUID();

/** Checked before any Redis call, so a hostile id never reaches a key name. */
export const isJobId = (value: string): boolean => JOB_ID.test(value);
