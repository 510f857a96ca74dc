import { describe, expect, it } from 'vitest';
import { createRetryBackoff, type RetryPolicy } from '../../src/llm/retry-policy.js';

const policy: RetryPolicy = { maxAttempts: 4, budgetMs: 15_000, baseDelayMs: 250, maxDelayMs: 2000 };
const SAMPLES = 500;

/** The first `count` pauses of many runs: pauses[i] holds every run's pause before retry i + 1. */
function pauses(count: number, retryAfterMs?: number): number[][] {
  const byRetry: number[][] = Array.from({ length: count }, () => []);
  for (let run = 0; run < SAMPLES; run += 1) {
    const backoff = createRetryBackoff(policy);
    for (const retry of byRetry) {
      retry.push(backoff.next(retryAfterMs));
    }
  }
  return byRetry;
}

const range = (values: readonly number[]) => [Math.min(...values), Math.max(...values)];

describe('createRetryBackoff', () => {
  it('doubles the ceiling with each retry, with half of it random', () => {
    const [first, second, third] = pauses(3).map(range);
    // Half fixed, half random: [ceiling / 2, ceiling], ceilings 250, 500, 1000.
    expect(first?.[0]).toBeGreaterThanOrEqual(125);
    expect(first?.[1]).toBeLessThanOrEqual(250);
    expect(second?.[0]).toBeGreaterThanOrEqual(250);
    expect(second?.[1]).toBeLessThanOrEqual(500);
    expect(third?.[0]).toBeGreaterThanOrEqual(500);
    expect(third?.[1]).toBeLessThanOrEqual(1000);
    // Jittered: instances that failed together spread out.
    expect(new Set(pauses(1)[0]).size).toBeGreaterThan(SAMPLES / 10);
  });

  it('stops growing at maxDelayMs', () => {
    const tenth = range(pauses(10)[9] ?? []);
    expect(tenth[0]).toBeGreaterThanOrEqual(1000);
    expect(tenth[1]).toBeLessThanOrEqual(2000);
  });

  it('never retries sooner than the upstream asked', () => {
    expect(new Set(pauses(1, 3000)[0])).toEqual(new Set([3000]));
    const third = range(pauses(3, 10)[2] ?? []);
    expect(third[0]).toBeGreaterThanOrEqual(500);
  });
});
