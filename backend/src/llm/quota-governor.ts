import type { Redis } from 'ioredis';
import { memberId } from '../redis/member-id.js';
import { sleep } from '../shared/sleep.js';
import type { DegradationTracker } from '../telemetry/degradation.js';
import type { Logger } from '../telemetry/logger.js';
import type { Metrics } from '../telemetry/metrics.js';
import { RESERVE, SETTLE } from './quota-scripts.js';
import type { UpstreamLimits } from './types.js';

/** Limits of one upstream key; 0 means unlimited. */
export interface QuotaLimits {
  requestsPerMinute: number;
  tokensPerMinute: number;
  requestsPerDay: number;
  tokensPerDay: number;
}

export type QuotaRefusalReason = 'paused' | 'requests' | 'tokens' | 'day_requests' | 'day_tokens';

export type ReserveResult =
  | { granted: true; id: string | undefined; waitedMs: number }
  | { granted: false; reason: QuotaRefusalReason; retryAfterMs: number; waitedMs: number };

/** How a call that held a reservation ended. */
export type SettleOutcome =
  /** The upstream counted the call: real tokens (or our estimate when unknown). */
  | { kind: 'counted'; tokens: number; limits?: UpstreamLimits }
  /** The upstream refused it with a 429 and did not count it; `tokens`: what the call needed. */
  | { kind: 'refused'; tokens: number; retryAfterMs: number | undefined; limits?: UpstreamLimits }
  /** The call was never sent (its circuit opened meanwhile). */
  | { kind: 'unused' };

export interface CallContext {
  signal?: AbortSignal;
}

/**
 * The shared budget of one upstream key, across every instance. A call first
 * reserves one request and its estimated tokens (atomically, in Redis), then
 * settles with the real usage. The governor follows the upstream's headers
 * and 429s, so it keeps to the real limit when another client spends the same
 * key or the key's limit is lower than configured.
 */
export interface QuotaGovernor {
  readonly provider: string;
  /** Waits for room until `deadline` (epoch ms); refuses at once when room comes later than that. */
  reserve(tokens: number, deadline: number, context?: CallContext): Promise<ReserveResult>;
  settle(reservationId: string | undefined, outcome: SettleOutcome): Promise<void>;
}

export interface QuotaGovernorOptions {
  redis: Redis;
  prefix: string;
  provider: string;
  limits: QuotaLimits;
  /** How long a reservation may stay unsettled before it is presumed lost (its instance died). */
  callTimeoutMs: number;
  metrics: Metrics;
  logger: Logger;
  tracker: DegradationTracker;
  /** The upstream's "minute" (60 s; shorter in tests and simulations). */
  windowMs?: number;
  /** The in-process clock (day limits, waits); the window itself runs on Redis TIME. */
  now?: () => number;
}

/**
 * Our window is a little longer than the upstream's minute: our clock (Redis)
 * and the upstream's differ, and a call counts from when it completed, so a
 * full window never lets a 31st call into the upstream's sliding minute.
 */
const WINDOW_SLACK_MS = 1000;
/** Polling interval while calls in flight hold estimates that will shrink when they settle. */
const POLL_MS = 100;
/** When a 429 comes without retry-after. */
const DEFAULT_PAUSE_MS = 2000;

const dayIndex = (now: number) => Math.floor(now / 86_400_000);

type TryReserveReply = { granted: boolean; waitMs: number; reason: string };

/**
 * The base of one provider's Redis keys, which the scripts name every key from
 * (quota-scripts.ts lists them): one hash tag per provider keeps them in one cluster slot.
 */
const quotaBase = (prefix: string, provider: string) => `${prefix}quota:{${provider}}:`;

/** What every step of one governor shares. */
interface Governor {
  options: QuotaGovernorOptions;
  keyBase: string;
  /** Our window: the upstream's plus WINDOW_SLACK_MS. */
  windowMs: number;
  /** Limits learned from the upstream expire, so the governor climbs back when the other client stops. */
  learnedTtlMs: number;
  now: () => number;
  /**
   * While Redis is down the governor lets calls through (the upstream's 429s and
   * the fallback still protect us) but remembers 429 pauses in memory.
   */
  localPauseUntil: number;
  log: Logger;
}

export function createQuotaGovernor(options: QuotaGovernorOptions): QuotaGovernor {
  const upstreamWindowMs = options.windowMs ?? 60_000;
  const governor: Governor = {
    options,
    keyBase: quotaBase(options.prefix, options.provider),
    windowMs: upstreamWindowMs + WINDOW_SLACK_MS,
    learnedTtlMs: 2 * upstreamWindowMs,
    now: options.now ?? Date.now,
    localPauseUntil: 0,
    log: options.logger.child({ component: 'quota', provider: options.provider }),
  };
  return {
    provider: options.provider,
    reserve: (tokens, deadline, context) => reserve(governor, tokens, deadline, context),
    settle: (reservationId, outcome) => settle(governor, reservationId, outcome),
  };
}

/** Waits for room (sleeping until the soonest slot, with jitter) until the deadline, the signal or a refusal. */
async function reserve(
  governor: Governor,
  tokens: number,
  deadline: number,
  context?: CallContext,
): Promise<ReserveResult> {
  const { now } = governor;
  const signal = context?.signal;
  const id = memberId();
  const started = now();
  let waited = false;
  for (;;) {
    let attempt: TryReserveReply;
    try {
      attempt = await tryReserve(governor, id, tokens);
      governor.options.tracker.succeeded();
    } catch (error) {
      governor.options.tracker.failed(error);
      return reserveWithoutRedis(governor, started);
    }
    const elapsed = now() - started;
    if (attempt.granted) {
      return reported(governor, waited, { granted: true, id, waitedMs: elapsed });
    }
    const left = deadline - now();
    if (attempt.waitMs > left || signal?.aborted) {
      const reason = attempt.reason as QuotaRefusalReason;
      const refused = { granted: false as const, reason, retryAfterMs: attempt.waitMs, waitedMs: elapsed };
      return reported(governor, waited, refused);
    }
    waited = true;
    // Jitter spreads the instances that wake for the same expiring slot.
    const jitter = Math.random() * Math.min(250, attempt.waitMs * 0.2);
    await sleep(Math.min(left, attempt.waitMs + jitter), signal);
  }
}

/** Redis is unreachable: let the call through unless a 429 paused this instance. */
function reserveWithoutRedis(governor: Governor, started: number): ReserveResult {
  const at = governor.now();
  const pausedFor = governor.localPauseUntil - at;
  return pausedFor > 0
    ? { granted: false, reason: 'paused', retryAfterMs: pausedFor, waitedMs: at - started }
    : { granted: true, id: undefined, waitedMs: at - started };
}

/** A reservation that had to wait is counted and logged (granted or not). */
function reported(governor: Governor, waited: boolean, result: ReserveResult): ReserveResult {
  if (waited) {
    const { metrics, provider } = governor.options;
    metrics.quotaWaits.inc({ provider });
    metrics.quotaWaitSeconds.observe(result.waitedMs / 1000);
    governor.log.info(
      { waitedMs: result.waitedMs, granted: result.granted, reason: result.granted ? undefined : result.reason },
      result.granted ? 'waited for upstream quota' : 'waited for upstream quota in vain',
    );
  }
  return result;
}

/** One RESERVE script run: granted, or how long until room and which limit is binding. */
async function tryReserve(governor: Governor, id: string, tokens: number): Promise<TryReserveReply> {
  const { keyBase, options } = governor;
  const { limits } = options;
  const day = dayIndex(governor.now());
  const reply = (await RESERVE.run(
    options.redis,
    [keyBase],
    [
      id,
      tokens,
      limits.requestsPerMinute,
      limits.tokensPerMinute,
      limits.requestsPerDay,
      limits.tokensPerDay,
      governor.windowMs,
      options.callTimeoutMs * 2,
      POLL_MS,
      day,
    ],
  )) as unknown[];
  recordGauges(governor, reply);
  return { granted: reply[0] === 1, waitMs: Number(reply[1]), reason: String(reply[2]) };
}

function recordGauges(governor: Governor, reply: unknown[]) {
  const { metrics, provider } = governor.options;
  const [remainingRequests, remainingTokens, rpm, tpm] = reply.slice(3, 7).map(Number) as [
    number,
    number,
    number,
    number,
  ];
  if (rpm >= 0) {
    metrics.quotaRemainingRequests.set({ provider }, remainingRequests);
    metrics.quotaLimitRequests.set({ provider }, rpm);
  }
  if (tpm >= 0) {
    metrics.quotaRemainingTokens.set({ provider }, remainingTokens);
    metrics.quotaLimitTokens.set({ provider }, tpm);
  }
}

async function settle(governor: Governor, reservationId: string | undefined, outcome: SettleOutcome): Promise<void> {
  const now = governor.now();
  const day = dayIndex(now);
  if (outcome.kind === 'refused') {
    governor.localPauseUntil = Math.max(governor.localPauseUntil, now + (outcome.retryAfterMs ?? DEFAULT_PAUSE_MS));
  }
  if (reservationId === undefined) {
    return;
  }
  // What the headers said rides in the same script; a call never sent has no headers.
  const seen = outcome.kind === 'unused' ? undefined : outcome.limits;
  try {
    if (outcome.kind === 'counted') {
      const tokens = Math.max(0, Math.round(outcome.tokens));
      await runSettle(governor, reservationId, day, { mode: 'used', tokens, seen });
    } else if (outcome.kind === 'unused') {
      await runSettle(governor, reservationId, day, { mode: 'release' });
    } else {
      await settleRefused(governor, reservationId, day, outcome);
    }
    governor.options.tracker.succeeded();
  } catch (error) {
    governor.options.tracker.failed(error);
  }
}

/** A 429: nothing spent, every instance pauses; with tokens to spare in its headers, the requests limit is lower than we think. */
async function settleRefused(
  governor: Governor,
  id: string,
  day: number,
  outcome: Extract<SettleOutcome, { kind: 'refused' }>,
): Promise<void> {
  const remainingTokens = outcome.limits?.remainingTokens;
  const requestsBound = remainingTokens !== undefined && remainingTokens >= outcome.tokens;
  const pauseMs = outcome.retryAfterMs ?? DEFAULT_PAUSE_MS;
  await runSettle(governor, id, day, { mode: 'release', pauseMs, learnRequests: requestsBound, seen: outcome.limits });
  governor.log.warn({ pauseMs, requestsBound }, 'upstream answered 429: pausing every instance');
}

/**
 * The SETTLE script: 'used' with the real tokens, or 'release' (nothing spent;
 * maybe a pause to share); then what the upstream's headers say of its limits
 * and of what remains, when it sent them.
 */
async function runSettle(
  governor: Governor,
  id: string,
  day: number,
  how: {
    mode: 'used' | 'release';
    tokens?: number;
    pauseMs?: number;
    learnRequests?: boolean;
    seen?: UpstreamLimits;
  },
): Promise<void> {
  const { keyBase, options } = governor;
  await SETTLE.run(
    options.redis,
    [keyBase],
    [
      id,
      how.mode,
      how.tokens ?? 0,
      how.pauseMs ?? 0,
      how.learnRequests ? 1 : 0,
      governor.learnedTtlMs,
      governor.windowMs,
      day,
      ...(how.seen ? observed(options.limits, how.seen) : []),
    ],
  );
}

/** The script's arguments for the headers seen: the configured limits, then the headers (-1: absent). */
function observed(limits: QuotaLimits, seen: UpstreamLimits): number[] {
  const orAbsent = (value: number | undefined) => (value === undefined ? -1 : value);
  return [
    limits.tokensPerMinute,
    limits.requestsPerDay,
    orAbsent(seen.limitTokens),
    orAbsent(seen.remainingTokens),
    orAbsent(seen.resetTokensMs),
    orAbsent(seen.limitRequests),
    orAbsent(seen.remainingRequests),
  ];
}

/**
 * A generous token estimate of a request before it is sent: about 3 characters
 * per token (real tokenizers average ~4 for English) plus a few per message for
 * the chat framing, plus the answer's maximum. Settling replaces it with the
 * real usage, so over-estimating only delays a little. Used where nothing has
 * been learned yet, and for the user's daily budget (chat-service).
 */
export function estimateTokens(messages: readonly { content: string }[], maxTokens: number): number {
  const prompt = messages.reduce((sum, message) => sum + Math.ceil(message.content.length / 3) + 4, 0);
  return prompt + maxTokens;
}

/** What the quota reserves for a call, learned from the usage the upstream reported for recent calls. */
export interface UsageEstimator {
  /** Tokens to reserve for this request: its prompt as the upstream counts it, plus the answer it will probably give. */
  estimate(messages: readonly { content: string }[], maxTokens: number): number;
  /** The usage the upstream reported for a call of these messages. */
  learn(messages: readonly { content: string }[], usage: { promptTokens: number; completionTokens: number }): void;
}

export interface UsageEstimatorOptions {
  /** How many recent calls it learns from. Default 100. */
  samples?: number;
  /** The share of recent answers whose length the estimate covers. Default 0.95. */
  completionQuantile?: number;
  /** Multiplies the learned figures: room for an answer a little longer than those seen. Default 1.1. */
  margin?: number;
}

const PER_MESSAGE_TOKENS = 4;

/**
 * Reserving the generous estimate (the answer's maximum, 300 tokens, when
 * answers are ~25) holds room that the window never uses while calls fly, so
 * the governor spent ~80-90% of a binding tokens-per-minute limit. This one
 * reserves what the upstream will really count: the prompt's tokens at the
 * ratio the upstream reported for recent prompts (the highest seen, so a
 * denser prompt does not overshoot), and the answer's length at the 95th
 * percentile of recent answers, both with a 10% margin and never above the
 * maximum. Until it has seen a call it falls back to estimateTokens. An
 * under-estimate only matters while a call flies (settling records the real
 * usage); the margin and the percentile keep that rare and small.
 */
export function createUsageEstimator(options: UsageEstimatorOptions = {}): UsageEstimator {
  const samples = options.samples ?? 100;
  const quantile = options.completionQuantile ?? 0.95;
  const margin = options.margin ?? 1.1;
  const tokensPerChar: number[] = [];
  const completions: number[] = [];
  const push = (list: number[], value: number) => {
    list.push(value);
    if (list.length > samples) {
      list.shift();
    }
  };
  const chars = (messages: readonly { content: string }[]) =>
    messages.reduce((sum, message) => sum + message.content.length, 0);

  return {
    estimate(messages, maxTokens) {
      if (completions.length === 0 || tokensPerChar.length === 0) {
        return estimateTokens(messages, maxTokens);
      }
      const ratio = Math.max(...tokensPerChar);
      const prompt = Math.ceil(chars(messages) * ratio * margin) + PER_MESSAGE_TOKENS * messages.length;
      const sorted = [...completions].sort((a, b) => a - b);
      const typical = sorted[Math.min(sorted.length - 1, Math.floor(quantile * sorted.length))] ?? maxTokens;
      const completion = Math.min(maxTokens, Math.ceil(typical * margin));
      return prompt + completion;
    },
    learn(messages, usage) {
      const length = chars(messages);
      if (length > 0 && usage.promptTokens > 0) {
        push(tokensPerChar, usage.promptTokens / length);
      }
      if (usage.completionTokens >= 0 && (usage.promptTokens > 0 || usage.completionTokens > 0)) {
        push(completions, usage.completionTokens);
      }
    },
  };
}
