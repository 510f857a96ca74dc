import { describe, expect, it } from 'vitest';
import { type RetryPolicy, retryDelayMs } from '../../src/llm/retry-policy.js';

const policy: RetryPolicy = { maxAttempts: 4, budgetMs: 15_000, baseDelayMs: 250, maxDelayMs: 2000 };

describe('retryDelayMs', () => {
  it('doubles the ceiling with each retry, with half of it random', () => {
    expect([1, 2, 3].map((retry) => retryDelayMs(retry, policy, undefined, () => 0))).toEqual([125, 250, 500]);
    expect([1, 2, 3].map((retry) => retryDelayMs(retry, policy, undefined, () => 1))).toEqual([250, 500, 1000]);
  });

  it('stops growing at maxDelayMs', () => {
    expect(retryDelayMs(10, policy, undefined, () => 1)).toBe(2000);
  });

  it('never retries sooner than the upstream asked', () => {
    expect(retryDelayMs(1, policy, 3000, () => 0.5)).toBe(3000);
    expect(retryDelayMs(3, policy, 10, () => 1)).toBe(1000);
  });
});
