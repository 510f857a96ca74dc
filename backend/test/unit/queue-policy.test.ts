import { describe, expect, it } from 'vitest';
import { budgetExhausted, tooManyConcurrent } from '../../src/errors.js';
import { UpstreamError } from '../../src/llm/upstream-error.js';
import { estimateSeconds, movingAverage } from '../../src/queue/eta.js';
import { parseIdempotencyKey, requestFingerprint } from '../../src/queue/idempotency.js';
import { isJobId, newJobId } from '../../src/queue/queue-keys.js';
import { jobRetryDelayMs, judgeFailure, MIN_QUOTA_DELAY_MS, publicError } from '../../src/queue/retry-policy.js';

const fallback = { jobMs: 2000, concurrency: 2 };

describe('estimateSeconds', () => {
  const measured = { intervalMs: 500, durationMs: 1000 };

  it('is position × the measured interval plus one job', () => {
    expect(estimateSeconds({ state: 'waiting', position: 10 }, measured, fallback)).toBe(6);
    expect(estimateSeconds({ state: 'waiting', position: 1 }, measured, fallback)).toBe(2);
  });

  it('counts only what is left of a running job, at least 1 s', () => {
    expect(estimateSeconds({ state: 'active', runningForMs: 200 }, measured, fallback)).toBe(1);
    expect(estimateSeconds({ state: 'active', runningForMs: 5000 }, measured, fallback)).toBe(1);
    expect(estimateSeconds({ state: 'active', runningForMs: 0 }, { intervalMs: 500, durationMs: 4000 }, fallback)).toBe(
      4,
    );
  });

  it('waits out a delay, or the line ahead if that is longer', () => {
    expect(estimateSeconds({ state: 'delayed', position: 2, readyInMs: 9000 }, measured, fallback)).toBe(10);
    expect(estimateSeconds({ state: 'delayed', position: 20, readyInMs: 1000 }, measured, fallback)).toBe(11);
  });

  it('falls back to a job time shared by the configured concurrency before anything was measured', () => {
    const nothing = { intervalMs: undefined, durationMs: undefined };
    expect(estimateSeconds({ state: 'waiting', position: 4 }, nothing, fallback)).toBe(6);
    expect(
      estimateSeconds({ state: 'waiting', position: 4 }, { intervalMs: undefined, durationMs: 500 }, fallback),
    ).toBe(2);
  });
});

describe('movingAverage', () => {
  it('divides the decayed sum by the decayed weight', () => {
    expect(movingAverage('40', '0.2')).toBe(200);
    expect(movingAverage(null, '0.2')).toBeUndefined();
    expect(movingAverage('40', '0')).toBeUndefined();
    expect(movingAverage('junk', '1')).toBeUndefined();
  });
});

describe('retry policy', () => {
  it('waits for quota without spending an attempt, at least the retry-after', () => {
    expect(judgeFailure(new UpstreamError('rate_limited', 'groq', 'quota', 429, 7000))).toEqual({
      kind: 'wait',
      delayMs: 7000,
    });
    expect(judgeFailure(new UpstreamError('rate_limited', 'groq', 'quota')).kind).toBe('wait');
  });

  it('waits at least MIN_QUOTA_DELAY_MS, so a busy governor does not re-queue a job ten times a second', () => {
    expect(judgeFailure(new UpstreamError('rate_limited', 'groq', 'quota', undefined, 100))).toEqual({
      kind: 'wait',
      delayMs: MIN_QUOTA_DELAY_MS,
    });
  });

  it('gives up on refusals and misconfiguration, retries the rest', () => {
    expect(judgeFailure(new UpstreamError('rejected', 'groq', 'bad request', 400)).kind).toBe('give_up');
    expect(judgeFailure(new UpstreamError('misconfigured', 'groq', 'bad key', 401)).kind).toBe('give_up');
    expect(judgeFailure(new UpstreamError('unavailable', 'groq', 'down', 503)).kind).toBe('retry');
    expect(judgeFailure(new UpstreamError('timeout', 'groq', 'slow')).kind).toBe('retry');
    expect(judgeFailure(new Error('redis went away')).kind).toBe('retry');
  });

  it('doubles the backoff per failed attempt and never undercuts a retry-after', () => {
    expect([1, 2, 3].map((attempt) => jobRetryDelayMs(attempt, 5000, new Error('x')))).toEqual([5000, 10_000, 20_000]);
    expect(jobRetryDelayMs(1, 5000, new UpstreamError('unavailable', 'groq', 'busy', 503, 30_000))).toBe(30_000);
  });

  it('tells clients the same codes as the HTTP API and nothing internal', () => {
    expect(publicError(new UpstreamError('unavailable', 'groq', 'upstream error 500 from 10.0.0.3', 500))).toEqual({
      code: 'upstream_error',
      message: expect.not.stringMatching(/10\.0\.0\.3|500/),
    });
    expect(publicError(new TypeError('x is undefined'))).toEqual({
      code: 'internal_error',
      message: 'Something went wrong on our side.',
    });
  });
});

describe('job ids and idempotency keys', () => {
  it('accepts only the random ids the queue hands out', () => {
    const id = newJobId();
    expect(isJobId(id)).toBe(true);
    expect(newJobId()).not.toBe(id);
    for (const hostile of ['', '1', '../..', `${id}/x`, id.toUpperCase(), `${id} `, 'a'.repeat(36)]) {
      expect(isJobId(hostile), hostile).toBe(false);
    }
  });

  it('takes a sane Idempotency-Key, refuses a malformed one, ignores a missing one', () => {
    expect(parseIdempotencyKey(undefined)).toBeUndefined();
    expect(parseIdempotencyKey('550e8400-e29b-41d4-a716-446655440000')).toBe('550e8400-e29b-41d4-a716-446655440000');
    for (const bad of ['short', 'with space', 'x'.repeat(129), 'new\nline', 'ünïcode-key']) {
      expect(() => parseIdempotencyKey(bad), bad).toThrow(/Idempotency-Key/);
    }
  });

  it('fingerprints the request, so the same key with another message is caught', () => {
    const a = requestFingerprint({ message: 'one', history: [] });
    expect(requestFingerprint({ message: 'one', history: [] })).toBe(a);
    expect(requestFingerprint({ message: 'two', history: [] })).not.toBe(a);
  });
});

describe('judgeFailure of a user limit', () => {
  it('waits out a short refusal (calls in flight) and fails the job on an exhausted day', () => {
    expect(judgeFailure(budgetExhausted(2))).toEqual({ kind: 'wait', delayMs: 2000 });
    expect(judgeFailure(tooManyConcurrent())).toEqual({ kind: 'wait', delayMs: MIN_QUOTA_DELAY_MS });
    expect(judgeFailure(budgetExhausted(3600))).toEqual({ kind: 'give_up' });
    expect(publicError(budgetExhausted(3600))).toMatchObject({ code: 'budget_exhausted' });
  });
});
