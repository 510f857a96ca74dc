import type { Redis } from 'ioredis';
import { memberId } from '../redis/member-id.js';
import type { DegradationTracker } from '../telemetry/degradation.js';
import type { Metrics } from '../telemetry/metrics.js';
import { budgetKeys, DAY_MS, inflightKey, userBase, utcDay } from './usage-keys.js';
import { reserveScript, settleScript } from './usage-scripts.js';

/**
 * Tokens held for one upstream call until it settles, and the concurrent-call
 * slot it may hold. A reservation belongs to the UTC day it was made on:
 * settled after midnight, it still counts on that day, the budget it was
 * admitted against, so the next day starts clean and no day is overspent by
 * more than one estimate.
 */
export interface BudgetReservation {
  readonly id: string;
  readonly userKey: string;
  readonly day: number;
  readonly estimateTokens: number;
  /** False when no tokens were held (unlimited budget, or Redis failing). */
  readonly tracked: boolean;
  /** True when the call holds one of the user's concurrent-call slots. */
  readonly slot: boolean;
}

/**
 * Why a reservation was refused. 'budget': today's settled usage leaves no room
 * for the estimate, so only the next UTC day will. 'in_flight': the user's calls
 * in flight hold the room; their real usage is usually smaller, so retry soon.
 * 'concurrency': the user already has every concurrent-call slot.
 */
export type BudgetRefusalReason = 'budget' | 'in_flight' | 'concurrency';

export type BudgetReserveResult =
  | { ok: true; reservation: BudgetReservation }
  | {
      ok: false;
      reason: BudgetRefusalReason;
      retryAfterSeconds: number;
      /** Tokens settled today. */
      usedTokens: number;
      /** Tokens held by the user's other calls in flight. */
      heldTokens: number;
      budget: number;
    };

export interface BudgetUsage {
  /** Tokens settled today; undefined when not tracked (unlimited budget) or Redis is failing. */
  tokensToday: number | undefined;
  /** Tokens per UTC day; 0 means unlimited. */
  budget: number;
}

/**
 * A member to add to a set of the user's own, hash-tagged by their key (on a
 * Redis Cluster it shares the slot of their usage), with the settlement.
 */
export interface UserSetMember {
  key: string;
  member: string;
  ttlSeconds: number;
}

export interface ReserveOptions {
  /** Also take one of the user's concurrent-call slots (synchronous requests), in the same script. */
  slot?: boolean;
}

/**
 * A user's daily token budget and cap on concurrent upstream calls, shared by
 * every instance: one Redis script before the call, one after it.
 */
export interface TokenBudget {
  reserve(userKey: string, estimateTokens: number, options?: ReserveOptions): Promise<BudgetReserveResult>;
  /**
   * Replaces the estimate with what the upstream reported and frees the slot. Only the first settle (or release) counts.
   * Resolves true when `listing` was added too (false: nothing was held, or Redis failed; the caller adds it itself).
   */
  settle(reservation: BudgetReservation, actualTokens: number, listing?: UserSetMember): Promise<boolean>;
  /** Frees the reservation without usage: the call never reached the upstream. */
  release(reservation: BudgetReservation): Promise<void>;
  usage(userKey: string): Promise<BudgetUsage>;
  /** Deletes every usage key of the user (account deletion); throws when Redis fails, so nothing is left silently. */
  forget(userKey: string): Promise<void>;
}

export interface TokenBudgetOptions {
  redis: Redis;
  prefix: string;
  /** 0 means unlimited: no Redis call on the request path unless a slot is asked. */
  tokensPerDay: number;
  /** A user's synchronous upstream calls at once, cluster-wide. */
  maxConcurrent: number;
  /** How long a reservation or slot counts without being settled (its instance may have died); longer than any call. */
  leaseMs?: number;
  now?: () => number;
  tracker: DegradationTracker;
  metrics: Metrics;
}

const DEFAULT_LEASE_MS = 120_000;
/** A day's keys outlive its midnight by this much, so calls in flight then still settle on it. */
const MIN_GRACE_MS = 3_600_000;
/** Retry-After for an 'in_flight' refusal: about the time a short coaching reply takes to settle. */
const IN_FLIGHT_RETRY_SECONDS = 2;
/** Retry-After for a 'concurrency' refusal, as the too_many_concurrent answer says. */
const CONCURRENCY_RETRY_SECONDS = 1;

/** What every step of one budget shares. */
interface Budget extends Required<Omit<TokenBudgetOptions, 'leaseMs' | 'now'>> {
  leaseMs: number;
  now: () => number;
  /** A day's keys live until its end plus this grace. */
  graceMs: number;
}

export function createTokenBudget(options: TokenBudgetOptions): TokenBudget {
  const leaseMs = options.leaseMs ?? DEFAULT_LEASE_MS;
  const { tokensPerDay, maxConcurrent } = options;
  if (!Number.isInteger(tokensPerDay) || tokensPerDay < 0 || !(leaseMs > 0)) {
    throw new Error('token budget: tokensPerDay must be an integer >= 0 and leaseMs > 0');
  }
  if (!Number.isInteger(maxConcurrent) || maxConcurrent < 1) {
    throw new Error('token budget: maxConcurrent must be an integer >= 1');
  }
  const budget: Budget = {
    ...options,
    leaseMs,
    now: options.now ?? Date.now,
    graceMs: Math.max(MIN_GRACE_MS, 2 * leaseMs),
  };
  return {
    reserve: (userKey, estimateTokens, reserveOptions) =>
      reserve(budget, userKey, Math.max(1, Math.ceil(estimateTokens)), reserveOptions?.slot === true),
    // An upstream that reported no usage: count the estimate, the best we know.
    settle: (reservation, actualTokens, listing) =>
      end(
        budget,
        reservation,
        Number.isFinite(actualTokens) ? Math.max(0, Math.round(actualTokens)) : reservation.estimateTokens,
        listing,
      ),
    release: async (reservation) => {
      await end(budget, reservation, 0);
    },
    usage: (userKey) => usage(budget, userKey),
    forget: (userKey) => forget(budget, userKey),
  };
}

/** Time left until a day's keys may go: its end plus the grace. */
const ttlMs = (budget: Budget, day: number, at: number) => Math.max(1, (day + 1) * DAY_MS + budget.graceMs - at);

async function reserve(budget: Budget, userKey: string, estimate: number, slot: boolean): Promise<BudgetReserveResult> {
  const { tokensPerDay, tracker, metrics } = budget;
  const at = budget.now();
  const day = utcDay(at);
  const admitted = (id: string, tracked: boolean, slotHeld: boolean): BudgetReserveResult => ({
    ok: true,
    reservation: { id, userKey, day, estimateTokens: estimate, tracked, slot: slotHeld },
  });
  if (tokensPerDay <= 0 && !slot) {
    return admitted('', false, false);
  }
  const id = memberId();
  let reply: [number, number, number];
  try {
    const args = [
      id,
      estimate,
      tokensPerDay,
      at,
      budget.leaseMs,
      ttlMs(budget, day, at),
      slot ? budget.maxConcurrent : 0,
      day,
    ];
    reply = ((await reserveScript.run(budget.redis, [userBase(budget.prefix, userKey)], args)) as unknown[]).map(
      Number,
    ) as typeof reply;
    tracker.succeeded();
  } catch (error) {
    // A Redis outage must not stop coaching: the per-user rate limit and the upstream quota still bound a user.
    tracker.failed(error);
    if (tokensPerDay > 0) {
      metrics.budgetFailOpen.inc();
    }
    return admitted(id, false, false);
  }
  const [granted, settled, held] = reply;
  if (granted === 1) {
    return admitted(id, tokensPerDay > 0, slot);
  }
  return refused(budget, at, granted, estimate, settled, held);
}

/** A refusal with its Retry-After: the next UTC midnight for a spent budget, soon otherwise. */
function refused(
  budget: Budget,
  at: number,
  granted: number,
  estimate: number,
  settled: number,
  held: number,
): BudgetReserveResult {
  const { tokensPerDay, metrics } = budget;
  const reason: BudgetRefusalReason =
    granted === -1 ? 'concurrency' : settled + estimate > tokensPerDay ? 'budget' : 'in_flight';
  const untilMidnight = Math.max(1, Math.ceil(((utcDay(at) + 1) * DAY_MS - at) / 1000));
  const retryAfterSeconds = {
    budget: untilMidnight,
    in_flight: Math.min(untilMidnight, IN_FLIGHT_RETRY_SECONDS),
    concurrency: CONCURRENCY_RETRY_SECONDS,
  }[reason];
  if (reason !== 'concurrency') {
    metrics.budgetExhausted.inc({ reason });
  }
  return { ok: false, reason, retryAfterSeconds, usedTokens: settled, heldTokens: held, budget: tokensPerDay };
}

async function end(
  budget: Budget,
  reservation: BudgetReservation,
  tokens: number,
  listing?: UserSetMember,
): Promise<boolean> {
  if (!reservation.tracked && !reservation.slot) {
    return false;
  }
  const { day } = reservation;
  const keys = [userBase(budget.prefix, reservation.userKey)];
  const args: (string | number)[] = [reservation.id, tokens, ttlMs(budget, day, budget.now()), day];
  if (listing) {
    keys.push(listing.key);
    args.push(listing.member, listing.ttlSeconds);
  }
  try {
    await settleScript.run(budget.redis, keys, args);
    budget.tracker.succeeded();
    return listing !== undefined;
  } catch (error) {
    // The estimate and the slot lapse with their lease; the real usage is lost, which favours the user.
    budget.tracker.failed(error);
    return false;
  }
}

async function usage(budget: Budget, userKey: string): Promise<BudgetUsage> {
  const { tokensPerDay, tracker } = budget;
  if (tokensPerDay <= 0) {
    return { tokensToday: undefined, budget: 0 };
  }
  try {
    const settled = await budget.redis.get(budgetKeys(budget.prefix, userKey, utcDay(budget.now())).settled);
    tracker.succeeded();
    return { tokensToday: Number(settled ?? 0), budget: tokensPerDay };
  } catch (error) {
    tracker.failed(error);
    return { tokensToday: undefined, budget: tokensPerDay };
  }
}

async function forget(budget: Budget, userKey: string): Promise<void> {
  // A day's keys live until its end plus the grace, so only yesterday's and
  // today's can exist; tomorrow's too if another instance's clock is ahead.
  const today = utcDay(budget.now());
  const days = [today - 1, today, today + 1].flatMap((day) => Object.values(budgetKeys(budget.prefix, userKey, day)));
  // One user's keys share a hash tag: one DEL, even on a Redis Cluster.
  await budget.redis.del(...days, inflightKey(budget.prefix, userKey));
}
