import { afterEach, describe, expect, it } from 'vitest';
import { type ChatBody, postChat, request, type TestResponse } from '../helpers/http-client.js';
import { callerIp, metricValue, startUpstreamCluster, type UpstreamCluster } from '../helpers/upstream-cluster.js';

/**
 * Three backends on one Redis in front of a primary simulator with Groq's
 * free-tier limits (30 RPM / 6,000 TPM) and a fallback simulator.
 */

interface ChatAnswerBody extends ChatBody {
  coalesced: boolean;
}

const body = (response: TestResponse) => response.json as ChatAnswerBody;
const accepted = (stats: { byStatus: Record<string, number> }) => stats.byStatus['200'] ?? 0;

/** Sends the questions one after another, round robin over the backends. */
async function sequentially(cluster: UpstreamCluster, questions: readonly string[]): Promise<TestResponse[]> {
  const responses: TestResponse[] = [];
  for (const [index, message] of questions.entries()) {
    responses.push(await postChat(cluster.at(index).url, { message }, { ip: callerIp(index) }));
  }
  return responses;
}

/** Spends the key directly, as another client of the same Groq organisation would. */
async function spendKey(baseUrl: string, calls: number, promptChars: number): Promise<void> {
  for (let index = 0; index < calls; index += 1) {
    const response = await fetch(`${baseUrl}/openai/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer test-key' },
      body: JSON.stringify({
        model: 'llama-3.1-8b-instant',
        max_tokens: 50,
        messages: [{ role: 'user', content: `other client ${index} ${'x'.repeat(promptChars)}` }],
      }),
    });
    expect(response.status).toBe(200);
  }
}

describe('upstream resilience (3 instances, 1 Redis, primary 30 RPM / 6,000 TPM + fallback)', () => {
  let cluster: UpstreamCluster | undefined;

  afterEach(async () => {
    await cluster?.close();
    cluster = undefined;
  });

  it('answers a burst of 120 questions from 40 callers: the primary never 429s, the fallback takes the rest', async () => {
    cluster = await startUpstreamCluster('burst');
    const { primary } = cluster;
    const started = performance.now();
    const responses = await Promise.all(
      Array.from({ length: 120 }, (_, index) =>
        postChat(
          (cluster as UpstreamCluster).at(index).url,
          { message: `Burst question ${index}: how do I start on task number ${index} today?` },
          { ip: callerIp(index % 40) },
        ),
      ),
    );
    const wallMs = performance.now() - started;

    expect(responses.map((response) => response.status)).toEqual(Array(120).fill(200));
    const stats = primary.stats();
    expect(stats.byStatus['429']).toBeUndefined();
    expect(stats.maxCallsPerMinute).toBeLessThanOrEqual(30);
    const served = accepted(stats);
    expect(served).toBeGreaterThanOrEqual(25);

    const byProvider = (provider: string) => responses.filter((response) => body(response).provider === provider);
    expect(byProvider('groq')).toHaveLength(served);
    expect(byProvider('fallback')).toHaveLength(120 - served);
    for (const response of byProvider('fallback')) {
      expect(body(response).response).toMatch(/^\[fallback\] /);
      expect(body(response).model).toBe('fallback-model');
    }
    for (const response of byProvider('groq')) {
      expect(body(response).response).toMatch(/^\[primary\] /);
    }

    // Each decision is logged, never with the question's text.
    const logs = cluster.backends.map((backend) => backend.logs.text).join('\n');
    const fallbackLine = logs.split('\n').find((line) => line.includes('falling back to the fallback provider'));
    expect(JSON.parse(fallbackLine ?? '{}')).toMatchObject({ reason: 'quota', requestId: expect.any(String) });
    expect(logs).not.toContain('Burst question');

    const tokensUsed = stats.calls.filter((call) => call.status === 200).reduce((sum, call) => sum + call.tokens, 0);
    const slowestMs = Math.max(...responses.map((response) => response.elapsedMs));
    const quotaWaits = logs
      .split('\n')
      .filter((line) => line.includes('waited for upstream quota'))
      .map((line) => (JSON.parse(line) as { waitedMs: number }).waitedMs);
    process.stdout.write(
      `[measure] burst: primary served ${served}/30 requests (${Math.round((served / 30) * 100)}% of the minute's ` +
        `request quota), ${tokensUsed}/6000 tokens (${Math.round((tokensUsed / 6000) * 100)}%); fallback ` +
        `${120 - served}; ${quotaWaits.length} requests waited for quota, the longest ${Math.max(0, ...quotaWaits)} ms; ` +
        `slowest answer ${Math.round(slowestMs)} ms; burst wall time ${Math.round(wallMs)} ms\n`,
    );
  });

  it('skips a primary failing with 500 once its circuit opens: 20 more questions cost it at most 5 calls', async () => {
    cluster = await startUpstreamCluster('breaker', {
      primary: { mode: 'error', errorStatus: 500 },
      env: { BREAKER_FAILURE_THRESHOLD: '5', BREAKER_COOLDOWN_MS: '60000', UPSTREAM_RETRY_BASE_MS: '50' },
    });
    const { primary } = cluster;
    const questions = (phase: string) =>
      Array.from({ length: 20 }, (_, index) => `${phase} question ${index}: where do I begin?`);

    const first = await Promise.all(
      questions('first').map((message, index) =>
        postChat((cluster as UpstreamCluster).at(index).url, { message }, { ip: callerIp(index) }),
      ),
    );
    expect(first.map((response) => response.status)).toEqual(Array(20).fill(200));
    expect(first.every((response) => body(response).provider === 'fallback')).toBe(true);
    for (const backend of cluster.backends) {
      const readiness = await request(`${backend.url}/readyz`);
      expect(readiness.status).toBe(200);
      expect(readiness.json).toMatchObject({
        upstream: { groq: { circuit: 'open' }, fallback: { circuit: 'closed' } },
      });
      expect(await metricValue(backend.url, 'focus_circuit_state', { provider: 'groq' })).toBe(2);
    }

    const callsBefore = primary.stats().requests;
    const second = await Promise.all(
      questions('second').map((message, index) =>
        postChat((cluster as UpstreamCluster).at(index).url, { message }, { ip: callerIp(index) }),
      ),
    );
    expect(second.map((response) => response.status)).toEqual(Array(20).fill(200));
    expect(second.every((response) => body(response).provider === 'fallback')).toBe(true);
    expect(primary.stats().requests - callsBefore).toBeLessThanOrEqual(5);
    const circuitFallbacks = await Promise.all(
      cluster.backends.map((backend) => metricValue(backend.url, 'focus_fallback_total', { reason: 'circuit_open' })),
    );
    expect(circuitFallbacks.reduce((sum: number, value) => sum + (value ?? 0), 0)).toBeGreaterThanOrEqual(20);
  });

  it('follows the real limit from the headers when another client spends the key: no 429, no error', async () => {
    // The key really allows 3,000 tokens a minute (configured: 6,000) and another client spends 2,050 of them.
    cluster = await startUpstreamCluster('headers', { primary: { tpm: 3000 } });
    const { primary } = cluster;
    await spendKey(primary.url, 2, 4000);

    const responses = await sequentially(
      cluster,
      Array.from({ length: 10 }, (_, index) => `Header question ${index}: what is my first step?`),
    );
    expect(responses.map((response) => response.status)).toEqual(Array(10).fill(200));
    const stats = primary.stats();
    expect(stats.byStatus['429']).toBeUndefined();
    const ours = accepted(stats) - 2;
    expect(ours).toBeGreaterThanOrEqual(1);
    expect(responses.filter((response) => body(response).provider === 'fallback')).toHaveLength(10 - ours);
    const learned = await Promise.all(
      cluster.backends.map((backend) => metricValue(backend.url, 'focus_quota_limit_tokens', { provider: 'groq' })),
    );
    expect(learned).toContain(3000);
  });

  it('follows a 429 when the requests run out early: one 429, then every instance waits; no error', async () => {
    cluster = await startUpstreamCluster('retry-after');
    const { primary } = cluster;
    // Another client has spent 28 of the minute's 30 requests.
    await spendKey(primary.url, 28, 10);

    const responses = await sequentially(
      cluster,
      Array.from({ length: 10 }, (_, index) => `Limit question ${index}: how do I stop scrolling?`),
    );
    expect(responses.map((response) => response.status)).toEqual(Array(10).fill(200));
    const stats = primary.stats();
    expect(stats.byStatus['429']).toBe(1);
    expect(accepted(stats)).toBe(30);
    expect(responses.filter((response) => body(response).provider === 'groq')).toHaveLength(2);
    expect(responses.filter((response) => body(response).provider === 'fallback')).toHaveLength(8);
  });

  it('makes one upstream call for 40 identical questions in flight on three instances', async () => {
    // A slow answer, so that all 40 are in flight together.
    cluster = await startUpstreamCluster('coalesce', { primary: { latencyMs: 800 } });
    const message = 'I have to write an essay and I cannot start. What do I do?';
    const responses = await Promise.all(
      Array.from({ length: 40 }, (_, index) =>
        postChat((cluster as UpstreamCluster).at(index).url, { message }, { ip: callerIp(index) }),
      ),
    );
    expect(responses.map((response) => response.status)).toEqual(Array(40).fill(200));
    expect(cluster.primary.stats().requests).toBe(1);
    expect(cluster.fallback?.stats().requests).toBe(0);
    expect(new Set(responses.map((response) => body(response).response)).size).toBe(1);
    expect(responses.filter((response) => !body(response).cached)).toHaveLength(1);
    const coalesced = responses.filter((response) => body(response).coalesced).length;
    expect(coalesced).toBeGreaterThanOrEqual(30);
    const counted = await Promise.all(
      cluster.backends.map((backend) => metricValue(backend.url, 'focus_coalesced_total')),
    );
    expect(counted.reduce((sum: number, value) => sum + (value ?? 0), 0)).toBe(coalesced);
  });
});

describe('fallback cache namespace', () => {
  it('never serves a fallback answer as the primary model’s, and reuses it from the cache', async () => {
    const cluster = await startUpstreamCluster('namespace', { primary: { rpm: 1 }, env: { GROQ_RPM: '1' } });
    try {
      const [first, second, third] = await sequentially(cluster, [
        'Namespace question A?',
        'Namespace question B?',
        'Namespace question B?',
      ]);
      expect(body(first as TestResponse)).toMatchObject({ provider: 'groq', cached: false });
      expect(body(second as TestResponse)).toMatchObject({ provider: 'fallback', cached: false });
      expect(body(third as TestResponse)).toMatchObject({
        provider: 'fallback',
        cached: true,
        model: 'fallback-model',
      });
      expect(cluster.fallback?.stats().requests).toBe(1);
    } finally {
      await cluster.close();
    }
  });
});
