import { randomUUID } from 'node:crypto';

/** The BullMQ queue every instance produces to and consumes from. */
export const CHAT_QUEUE_NAME = 'chat';

/**
 * BullMQ's own key prefix under ours, so one REDIS_PREFIX namespaces everything.
 * The braces are a Redis Cluster hash tag, the ledger's too (queueKeys): BullMQ's
 * scripts touch several keys of a queue at once, which a cluster allows only
 * within one slot, and with the ledger in the same slot one WAIT on its
 * primary covers an admission's writes to both.
 */
const QUEUE_HASH_TAG = '{queue}';
export const bullPrefix = (redisPrefix: string) => `${redisPrefix}${QUEUE_HASH_TAG}:bull`;

/**
 * Our keys beside BullMQ's:
 * - line: the jobs not yet started, in the order BullMQ will run them (sorted
 *   set), so a position is one ZRANK instead of a scan of BullMQ's lists. The
 *   score is band × 2^42 + a place in ms: jobs recovered from a dead worker
 *   first, then each priority in order of entry (as BullMQ's prioritized set),
 *   then delayed jobs by due time until they fall due; see ledger-scripts.ts
 * - arrival: the last arrival place handed out (keeps arrivals strictly ordered)
 * - job: the public record of one job (owner, state, priority, result or
 *   error), small enough to read on every poll, unlike the BullMQ hash that
 *   holds the message
 * - idem: Idempotency-Key → job id, per caller
 * - stats: the cluster-wide moving averages behind estimatedTime
 * - owner:<hash>:line, :jobs, :idem: one caller's jobs in line (their count is
 *   the next job's priority), every job still held (for export and deletion),
 *   and their Idempotency-Key slots; sorted sets scored by expiry in ms, so
 *   members leave as the records they name expire
 */
export interface QueueKeys {
  line: string;
  seq: string;
  stats: string;
  /** job(id) is jobPrefix + id: the deletion script builds record keys from ids. */
  jobPrefix: string;
  /** owner(hash, what) is ownerPrefix + hash + ':' + what: the scripts find a record's owner keys this way. */
  ownerPrefix: string;
  job(jobId: string): string;
  idempotency(ownerHash: string, keyHash: string): string;
  owner(ownerHash: string, what: OwnerKey): string;
}

export type OwnerKey = 'line' | 'jobs' | 'idem';

export function queueKeys(redisPrefix: string): QueueKeys {
  // BullMQ's hash tag for every key of the ledger: its scripts touch the line, records and owners' keys together.
  const base = `${redisPrefix}${QUEUE_HASH_TAG}:`;
  const jobPrefix = `${base}job:`;
  const ownerPrefix = `${base}owner:`;
  return {
    line: `${base}line`,
    // In ms; earlier versions kept a µs place under "seq", which would overflow the priority bands.
    seq: `${base}arrival`,
    stats: `${base}stats`,
    jobPrefix,
    ownerPrefix,
    job: (jobId) => `${jobPrefix}${jobId}`,
    idempotency: (ownerHash, keyHash) => `${base}idem:${ownerHash}:${keyHash}`,
    owner: (ownerHash, what) => `${ownerPrefix}${ownerHash}:${what}`,
  };
}

// A random (v4) UUID: 122 random bits, so ids cannot be guessed or enumerated.
const JOB_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

export const newJobId = (): string => randomUUID();

/** Checked before any Redis call, so a hostile id never reaches a key name. */
export const isJobId = (value: string): boolean => JOB_ID.test(value);
