import { describe, expect, it } from 'vitest';
import { createUsageEstimator, estimateTokens } from '../../src/llm/quota-governor.js';

const system = { content: 'x'.repeat(960) };
const messages = (text: string) => [system, { content: text }];

describe('usage estimator (what a call reserves of the upstream quota)', () => {
  it('reserves the generous estimate until it has seen an answer', () => {
    const estimator = createUsageEstimator();
    expect(estimator.estimate(messages('Where do I start?'), 300)).toBe(
      estimateTokens(messages('Where do I start?'), 300),
    );
  });

  it('then reserves the prompt as the upstream counts it and a typical answer, with a margin, not the maximum', () => {
    const estimator = createUsageEstimator();
    // An upstream counting 4 characters a token, answering ~25 tokens.
    for (let index = 0; index < 20; index += 1) {
      const asked = messages(`question number ${index}`);
      const chars = asked.reduce((sum, message) => sum + message.content.length, 0);
      estimator.learn(asked, { promptTokens: Math.ceil(chars / 4), completionTokens: 22 + (index % 4) });
    }
    const asked = messages('I have three overdue tasks. Which first?');
    const real = Math.ceil(asked.reduce((sum, message) => sum + message.content.length, 0) / 4) + 25;
    const estimate = estimator.estimate(asked, 300);
    expect(estimate).toBeGreaterThanOrEqual(real);
    expect(estimate).toBeLessThan(real * 1.15);
    // The old estimate held more than twice the real usage while the call flew.
    expect(estimateTokens(asked, 300)).toBeGreaterThan(real * 2);
  });

  it('covers the 95th percentile of recent answers and never reserves more than the maximum', () => {
    const estimator = createUsageEstimator({ samples: 20 });
    for (let index = 0; index < 20; index += 1) {
      estimator.learn(messages('q'), { promptTokens: 250, completionTokens: index === 19 ? 400 : 30 });
    }
    expect(estimator.estimate(messages('q'), 300)).toBeLessThanOrEqual(estimateTokens(messages('q'), 0) + 300);
    expect(estimator.estimate(messages('q'), 1000)).toBeGreaterThanOrEqual(250 + 400);
  });

  it('forgets old calls: it follows answers that grow shorter', () => {
    const estimator = createUsageEstimator({ samples: 10 });
    for (let index = 0; index < 10; index += 1) {
      estimator.learn(messages('q'), { promptTokens: 250, completionTokens: 200 });
    }
    const before = estimator.estimate(messages('q'), 300);
    for (let index = 0; index < 10; index += 1) {
      estimator.learn(messages('q'), { promptTokens: 250, completionTokens: 20 });
    }
    expect(estimator.estimate(messages('q'), 300)).toBeLessThan(before - 150);
  });
});
