import { redisScript } from '../redis/redis-script.js';

/**
 * The Lua side of the job ledger (job-ledger.ts). Each script is one atomic
 * step of a job's life; every timestamp comes from Redis TIME, so instances
 * with skewed clocks still measure the same waits and intervals.
 *
 * The line mirrors BullMQ's order. BullMQ serves its wait list first (where a
 * job recovered from a dead worker goes), then its prioritized set, scored
 * priority × 2^32 + a counter of entries: a new job, and a delayed job once it
 * falls due, enter behind the jobs of their priority already there; a job
 * handed back at shutdown goes to the front of its priority. A delayed job is
 * in no line until due: every runnable job goes before it meanwhile.
 *
 * Our score is band × PLACE_UNIT + a place in ms. Bands: 0 for jobs recovered
 * from a dead worker, then the priorities (place: arrival time; 0 for a job
 * handed back), then DELAYED_BAND for delayed jobs (place: due time), behind
 * every runnable job. BullMQ promotes the delayed jobs now due when a worker
 * fetches, just before our start script runs: that script promotes them too,
 * each with an arrival place then (promote_due). Places in ms stay under 2^42
 * until 2109, so with priorities up to MAX_PRIORITY every score is an exact
 * integer in a double.
 *
 * An owner's keys (queue-keys.ts) are found from the record's owner, so a
 * worker that knows only a job id keeps the owner's count of jobs in line.
 */

/** 2^42: priority bands above, places in ms below. */
export const PLACE_UNIT = 2 ** 42;
/** The largest priority: the band above it is the delayed jobs', and scores stay below 2^53. */
export const MAX_PRIORITY = 2 ** (53 - 42) - 2;
const DELAYED_BAND = MAX_PRIORITY + 1;

/** The numbers the ledger's Lua reads, defined once here. */
const LEDGER_CONSTANTS = { constants: { PLACE_UNIT, DELAYED_BAND, MAX_PRIORITY } };

/**
 * Admission: the idempotency slot, the backlog cap, the priority (1 + the
 * owner's jobs in line), the place in line, the job's record and the owner's
 * index in one atomic step, so concurrent POSTs can neither pass the cap, nor
 * queue one Idempotency-Key twice, nor get the same priority.
 * KEYS: line, seq, job, idempotency key (or "" when none), stats, owner line, owner jobs, owner idem
 * ARGV: jobId, owner, maxWaiting, pendingTtlSeconds, idempotencyTtlSeconds, idempotency value,
 *       index grace seconds (how long BullMQ may keep a job past its record)
 * → {'existing', value} | {'full', stats} | {'admitted', stats, rank, priority}
 */
export const admitScript = redisScript(new URL('./ledger-admit.lua', import.meta.url), LEDGER_CONSTANTS);

/**
 * Undoes an admission whose BullMQ add failed, and/or frees an idempotency slot
 * if it still holds the given value.
 * KEYS: line, job or "", idempotency key or "", owner line, owner jobs, owner idem. ARGV: jobId or "", value
 */
export const withdrawScript = redisScript(new URL('./ledger-withdraw.lua', import.meta.url));

/**
 * A worker starts an attempt, just after BullMQ's fetch, which promoted the
 * delayed jobs now due. KEYS: line, job, seq. ARGV: jobId, owner key prefix, job key prefix
 * → -1 no record (expired or deleted: nobody can read an answer), -3 already
 * finished (a re-delivery), -2 a restart, else the ms the job waited before its first start.
 */
export const startScript = redisScript(new URL('./ledger-start.lua', import.meta.url), LEDGER_CONSTANTS);

/**
 * The job goes back in line where BullMQ puts it (see the top of this file):
 * delayed (quota, retry backoff) behind the runnable jobs until due; handed
 * back at shutdown at the front of its priority; stalled (recovered from a dead
 * worker) ahead of every prioritized job, the latest first, as BullMQ's wait
 * list serves them.
 * KEYS: line, job, stats. ARGV: jobId, how (delayed|handed_back|stalled), delayMs,
 * attempt duration ms or "", owner key prefix
 * → 1 parked, 0 already finished, -1 no record
 */
export const parkScript = redisScript(new URL('./ledger-park.lua', import.meta.url), LEDGER_CONSTANTS);

/**
 * The job's final outcome, readable for ttl seconds. A finished record is never overwritten.
 * KEYS: line, job, stats. ARGV: jobId, state, field (result|error), JSON, ttlSeconds,
 * attempt duration ms or "", owner key prefix, index grace seconds
 * → 1 recorded, 0 already finished, -1 no record
 */
export const finishScript = redisScript(new URL('./ledger-finish.lua', import.meta.url), LEDGER_CONSTANTS);

/**
 * Drops a line entry the reconciler found stale, unless it was re-queued since.
 * KEYS: line, job. ARGV: jobId, score, owner key prefix
 */
export const dropStaleScript = redisScript(new URL('./ledger-drop-stale.lua', import.meta.url), LEDGER_CONSTANTS);

/**
 * Deletes what the ledger holds of one owner: each job's record and line
 * entry, their Idempotency-Key slots, and the owner's own keys.
 * KEYS: line, owner line, owner jobs, owner idem. ARGV: job key prefix
 * → the job ids, for the caller to remove from BullMQ
 */
export const forgetScript = redisScript(new URL('./ledger-forget.lua', import.meta.url));
