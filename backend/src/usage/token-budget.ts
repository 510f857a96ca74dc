import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { DegradationTracker } from '../telemetry/degradation.js';
import type { Metrics } from '../telemetry/metrics.js';
import { budgetKeys, DAY_MS, utcDay } from './usage-keys.js';
import { reserveScript, settleScript } from './usage-scripts.js';

/**
 * Tokens held for one upstream call until it settles. A reservation belongs to
 * the UTC day it was made on: settled after midnight, it still counts on that
 * day, the budget it was admitted against, so the next day starts clean and
 * no day is overspent by more than one estimate.
 */
export interface BudgetReservation {
  readonly id: string;
  readonly userKey: string;
  readonly day: number;
  readonly estimateTokens: number;
  /** False when nothing was stored (unlimited budget, or Redis failing): settling it does nothing. */
  readonly tracked: boolean;
}

/**
 * Why a reservation was refused. 'budget': today's settled usage leaves no room
 * for the estimate, so only the next UTC day will. 'in_flight': the user's calls
 * in flight hold the room; their real usage is usually smaller, so retry soon.
 */
export type BudgetRefusalReason = 'budget' | 'in_flight';

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

/** A user's daily token budget, shared by every instance. */
export interface TokenBudget {
  reserve(userKey: string, estimateTokens: number): Promise<BudgetReserveResult>;
  /** Replaces the estimate with what the upstream reported. Only the first settle (or release) counts. */
  settle(reservation: BudgetReservation, actualTokens: number): Promise<void>;
  /** Frees the reservation without usage: the call never reached the upstream. */
  release(reservation: BudgetReservation): Promise<void>;
  usage(userKey: string): Promise<BudgetUsage>;
  /** Deletes every budget key of the user (account deletion); throws when Redis fails, so nothing is left silently. */
  forget(userKey: string): Promise<void>;
}

export interface TokenBudgetOptions {
  redis: Redis;
  prefix: string;
  /** 0 means unlimited: no Redis call on the request path. */
  tokensPerDay: number;
  /** How long a reservation counts without being settled (its instance may have died); longer than any call. */
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

export function createTokenBudget(options: TokenBudgetOptions): TokenBudget {
  const { redis, prefix, tokensPerDay, tracker, metrics } = options;
  const now = options.now ?? Date.now;
  const leaseMs = options.leaseMs ?? DEFAULT_LEASE_MS;
  if (!Number.isInteger(tokensPerDay) || tokensPerDay < 0 || !(leaseMs > 0)) {
    throw new Error('token budget: tokensPerDay must be an integer >= 0 and leaseMs > 0');
  }
  const graceMs = Math.max(MIN_GRACE_MS, 2 * leaseMs);
  /** Time left until the day's keys may go: its end plus the grace. */
  const ttlMs = (day: number, at: number) => Math.max(1, (day + 1) * DAY_MS + graceMs - at);

  const untracked = (userKey: string, estimate: number): BudgetReservation => ({
    id: '',
    userKey,
    day: utcDay(now()),
    estimateTokens: estimate,
    tracked: false,
  });

  async function reserve(userKey: string, estimateTokens: number): Promise<BudgetReserveResult> {
    const estimate = Math.max(1, Math.ceil(estimateTokens));
    if (tokensPerDay <= 0) {
      return { ok: true, reservation: untracked(userKey, estimate) };
    }
    const at = now();
    const day = utcDay(at);
    const id = randomUUID();
    const keys = budgetKeys(prefix, userKey, day);
    let reply: number[];
    try {
      reply = (
        (await reserveScript.run(
          redis,
          [keys.settled, keys.held, keys.leases],
          [id, estimate, tokensPerDay, at, leaseMs, ttlMs(day, at)],
        )) as unknown[]
      ).map(Number);
      tracker.succeeded();
    } catch (error) {
      // A Redis outage must not stop coaching: the upstream quota still protects the key.
      tracker.failed(error);
      metrics.budgetFailOpen.inc();
      return { ok: true, reservation: untracked(userKey, estimate) };
    }
    const [granted, settled, held] = reply as [number, number, number];
    if (granted === 1) {
      return { ok: true, reservation: { id, userKey, day, estimateTokens: estimate, tracked: true } };
    }
    const reason: BudgetRefusalReason = settled + estimate > tokensPerDay ? 'budget' : 'in_flight';
    metrics.budgetExhausted.inc({ reason });
    const untilMidnight = Math.max(1, Math.ceil(((day + 1) * DAY_MS - at) / 1000));
    return {
      ok: false,
      reason,
      retryAfterSeconds: reason === 'budget' ? untilMidnight : Math.min(untilMidnight, IN_FLIGHT_RETRY_SECONDS),
      usedTokens: settled,
      heldTokens: held,
      budget: tokensPerDay,
    };
  }

  async function end(reservation: BudgetReservation, tokens: number): Promise<void> {
    if (!reservation.tracked) {
      return;
    }
    const keys = budgetKeys(prefix, reservation.userKey, reservation.day);
    try {
      await settleScript.run(
        redis,
        [keys.settled, keys.held, keys.leases],
        [reservation.id, tokens, ttlMs(reservation.day, now())],
      );
      tracker.succeeded();
    } catch (error) {
      // The estimate lapses with its lease; the real usage is lost, which favours the user.
      tracker.failed(error);
    }
  }

  return {
    reserve,
    // An upstream that reported no usage: count the estimate, the best we know.
    settle: (reservation, actualTokens) =>
      end(
        reservation,
        Number.isFinite(actualTokens) ? Math.max(0, Math.round(actualTokens)) : reservation.estimateTokens,
      ),
    release: (reservation) => end(reservation, 0),

    async usage(userKey) {
      if (tokensPerDay <= 0) {
        return { tokensToday: undefined, budget: 0 };
      }
      try {
        const settled = await redis.get(budgetKeys(prefix, userKey, utcDay(now())).settled);
        tracker.succeeded();
        return { tokensToday: Number(settled ?? 0), budget: tokensPerDay };
      } catch (error) {
        tracker.failed(error);
        return { tokensToday: undefined, budget: tokensPerDay };
      }
    },

    async forget(userKey) {
      // A day's keys live until its end plus the grace, so only yesterday's and
      // today's can exist; tomorrow's too if another instance's clock is ahead.
      const today = utcDay(now());
      const keys = [today - 1, today, today + 1].flatMap((day) => Object.values(budgetKeys(prefix, userKey, day)));
      await redis.del(...keys);
    },
  };
}
