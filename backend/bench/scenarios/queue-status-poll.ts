import { startBackendProcess } from '../../test/helpers/backend-process.js';
import { benchPrefix, deleteKeys, report, runLoad, runScenario } from '../harness.js';

/**
 * What thousands of apps polling GET /api/chat/status/:jobId every 2 s cost:
 * one backend process (ROLE=api, so the jobs stay queued), a backlog of
 * BACKLOG jobs, and polls of the last one: the most expensive answer
 * (processing, with its place in line and estimate), one pipelined Redis read.
 */
const SCENARIO = 'queue-status-poll';
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const BACKLOG = 400;

runScenario(async () => {
  const prefix = benchPrefix(SCENARIO);
  const backend = await startBackendProcess(
    {
      REDIS_URL,
      REDIS_PREFIX: prefix,
      ROLE: 'api',
      GROQ_BASE_URL: 'http://127.0.0.1:9',
      GROQ_API_KEY: 'bench-key',
      MAX_REQUESTS_PER_MINUTE: '1000000000',
      POLLS_PER_MINUTE: '1000000000',
      QUEUE_MAX_WAITING: String(BACKLOG),
      LOG_LEVEL: 'info',
    },
    { stdout: 'discard', entry: 'build' },
  );
  try {
    const headers = { 'content-type': 'application/json' };
    let jobId = '';
    for (let index = 0; index < BACKLOG; index += 1) {
      const body = JSON.stringify({ message: `Backlog message ${index}` });
      const posted = await fetch(`${backend.url}/api/chat/queue`, { method: 'POST', headers, body });
      if (posted.status !== 202) {
        throw new Error(`queueing answered ${posted.status}: ${await posted.text()}`);
      }
      jobId = ((await posted.json()) as { jobId: string }).jobId;
    }
    const probe = (await (await fetch(`${backend.url}/api/chat/status/${jobId}`)).json()) as { position?: number };
    if (probe.position !== BACKLOG) {
      throw new Error(`expected the polled job at position ${BACKLOG}, got ${JSON.stringify(probe)}`);
    }
    const load = await runLoad({
      url: backend.url,
      path: `/api/chat/status/${jobId}`,
      durationSeconds: 10,
      connections: 20,
    });
    // Apps poll every 2 s: how many could one instance follow at this rate.
    report(SCENARIO, { ...load, backlog: BACKLOG, pollersAt2s: load.requestsPerSecond * 2 });
  } finally {
    await backend.stop();
    await deleteKeys(REDIS_URL, prefix);
  }
});
