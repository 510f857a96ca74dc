import { readRunState } from '../../../deploy/local/stack.js';
import { localStackEnv, runMake } from '../../test/helpers/local-stack.js';
import { report, runLoad, runScenario } from '../harness.js';

/**
 * What one caller can push through Caddy on cache hits: the local stack
 * (`make up`, random ports and run directory, a fresh REDIS_PREFIX) with 1,
 * then 3 instances, the same question over 10 connections for 10 s. With one
 * instance it also loads that instance directly, so the line shows what Caddy
 * itself costs. One JSON line per measurement.
 */
const SCENARIO = 'caddy-cache-hits';
const BODY = JSON.stringify({ message: 'I have 20 minutes and three overdue tasks. Where do I start?' });
const HEADERS = { 'content-type': 'application/json' };

async function measure(instances: number): Promise<void> {
  const env = await localStackEnv({ MAX_REQUESTS_PER_MINUTE: '1000000000' });
  await runMake(['up', `N=${instances}`], env);
  try {
    const state = await readRunState(env);
    if (!state) {
      throw new Error('the stack wrote no state');
    }
    const warmUp = await fetch(`${state.publicUrl}/api/chat`, { method: 'POST', headers: HEADERS, body: BODY });
    if (warmUp.status !== 200) {
      throw new Error(`warm-up answered ${warmUp.status}: ${await warmUp.text()}`);
    }
    const load = {
      path: '/api/chat',
      method: 'POST' as const,
      headers: HEADERS,
      body: BODY,
      durationSeconds: 10,
      connections: 10,
    };
    report(SCENARIO, { instances, via: 'caddy', ...(await runLoad({ url: state.publicUrl, ...load })) });
    const first = state.instances[0];
    if (instances === 1 && first) {
      report(SCENARIO, {
        instances,
        via: 'direct',
        ...(await runLoad({ url: `http://127.0.0.1:${first.port}`, ...load })),
      });
    }
  } finally {
    await runMake(['down'], env);
  }
}

runScenario(async () => {
  await measure(1);
  await measure(3);
});
