import { randomUUID } from 'node:crypto';
import { readRunState } from '../../../deploy/local/stack.js';
import { startGroqSimulator } from '../../sim/groq-simulator.js';
import { localStackEnv, runMake } from '../../test/helpers/local-stack.js';
import { report, runScenario } from '../harness.js';

/**
 * Time to the first streamed word, and what the stack adds to it: the same
 * streamed completion asked of the upstream directly, then of the stack's
 * gateway route through Caddy (POST /v1/chat/completions, stream: true), and
 * of the app's route (POST /api/chat/stream). The upstream (the simulator)
 * sends its first chunk after UPSTREAM_TTFB_MS and one every 20 ms after that.
 * Every question is new, so each one goes upstream (no cache hit). Sequential
 * requests, one at a time; p50 and p99 over ROUNDS of each.
 */
const SCENARIO = 'stream-ttfb';
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 100);
const UPSTREAM_TTFB_MS = Number(process.env.UPSTREAM_TTFB_MS ?? 50);
const MODEL = 'llama-3.1-8b-instant';

/** ms from sending the request to the first content of the answer. */
async function firstContentMs(url: string, body: unknown, headers: Record<string, string>): Promise<number> {
  const started = performance.now();
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
  if (response.status !== 200 || !response.body) {
    throw new Error(`${url} answered ${response.status}: ${await response.text()}`);
  }
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let seen = '';
  let first: number | undefined;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) {
      break;
    }
    seen += decoder.decode(value, { stream: true });
    // The first chunk with words in it: a "content" delta (upstream, /v1) or a delta event (the app's route).
    if (first === undefined && /"content":"[^"]|event: delta/.test(seen)) {
      first = performance.now() - started;
    }
  }
  if (first === undefined) {
    throw new Error(`${url} streamed no content`);
  }
  return first;
}

function percentiles(samples: number[]) {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (share: number) =>
    Math.round((sorted[Math.min(sorted.length - 1, Math.floor(share * sorted.length))] ?? 0) * 10) / 10;
  return { p50Ms: at(0.5), p99Ms: at(0.99) };
}

runScenario(async () => {
  const simulator = await startGroqSimulator({ latencyMs: UPSTREAM_TTFB_MS, chunkDelayMs: 20, apiKey: 'bench-key' });
  const env = await localStackEnv({
    GROQ_BASE_URL: simulator.url,
    GROQ_API_KEY: 'bench-key',
    GROQ_MODEL: MODEL,
    USER_REQUESTS_PER_MINUTE: '1000000000',
    USER_TOKENS_PER_DAY: '0',
  });
  await runMake(['up', 'N=2'], env);
  try {
    const state = await readRunState(env);
    if (!state) {
      throw new Error('the stack wrote no state');
    }
    const signUp = await fetch(`${state.publicUrl}/api/auth/device`, { method: 'POST' });
    const { token } = (await signUp.json()) as { token: string };
    const auth = { authorization: `Bearer ${token}` };
    const question = () => `Where do I start? (${randomUUID()})`;
    const gatewayBody = () => ({ model: MODEL, messages: [{ role: 'user', content: question() }], stream: true });
    const targets = {
      upstream: () =>
        firstContentMs(`${simulator.url}/openai/v1/chat/completions`, gatewayBody(), {
          authorization: 'Bearer bench-key',
        }),
      gatewayViaCaddy: () => firstContentMs(`${state.publicUrl}/v1/chat/completions`, gatewayBody(), auth),
      appStreamViaCaddy: () => firstContentMs(`${state.publicUrl}/api/chat/stream`, { message: question() }, auth),
    };
    const results: Record<string, { p50Ms: number; p99Ms: number }> = {};
    for (const [name, measure] of Object.entries(targets)) {
      await measure();
      const samples: number[] = [];
      for (let round = 0; round < ROUNDS; round += 1) {
        samples.push(await measure());
      }
      results[name] = percentiles(samples);
    }
    const upstream = results.upstream as { p50Ms: number; p99Ms: number };
    report(SCENARIO, {
      rounds: ROUNDS,
      upstreamFirstChunkMs: UPSTREAM_TTFB_MS,
      ...results,
      overheadP50Ms: {
        gatewayViaCaddy: Math.round(((results.gatewayViaCaddy?.p50Ms ?? 0) - upstream.p50Ms) * 10) / 10,
        appStreamViaCaddy: Math.round(((results.appStreamViaCaddy?.p50Ms ?? 0) - upstream.p50Ms) * 10) / 10,
      },
    });
  } finally {
    await runMake(['down'], env);
    await simulator.close();
  }
});
