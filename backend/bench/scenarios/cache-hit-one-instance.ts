import { startGroqSimulator } from '../../sim/groq-simulator.js';
import { startBackendProcess } from '../../test/helpers/backend-process.js';
import { benchPrefix, deleteKeys, report, runLoad, runScenario } from '../harness.js';

/**
 * The cheapest useful answer: one backend process, the same question from one
 * caller, every request a cache hit in Redis (the upstream is called once, by
 * the warm-up). Measures the HTTP + rate limit + validation + cache path.
 */
const SCENARIO = 'cache-hit-one-instance';
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

runScenario(async () => {
  const simulator = await startGroqSimulator({ latencyMs: 40 });
  const prefix = benchPrefix(SCENARIO);
  const backend = await startBackendProcess(
    {
      REDIS_URL,
      REDIS_PREFIX: prefix,
      GROQ_BASE_URL: simulator.url,
      GROQ_API_KEY: 'bench-key',
      MAX_REQUESTS_PER_MINUTE: '1000000000',
      LOG_LEVEL: 'info',
    },
    { stdout: 'discard', entry: 'build' },
  );
  try {
    const headers = { 'content-type': 'application/json' };
    const body = JSON.stringify({ message: 'I have 20 minutes and three overdue tasks. Where do I start?' });
    const warmUp = await fetch(`${backend.url}/api/chat`, { method: 'POST', headers, body });
    if (warmUp.status !== 200) {
      throw new Error(`warm-up answered ${warmUp.status}: ${await warmUp.text()}`);
    }
    const load = await runLoad({
      url: backend.url,
      path: '/api/chat',
      method: 'POST',
      headers,
      body,
      durationSeconds: 10,
      connections: 10,
    });
    report(SCENARIO, { ...load, upstreamCalls: simulator.stats().requests });
  } finally {
    await backend.stop();
    await simulator.close();
    await deleteKeys(REDIS_URL, prefix);
  }
});
