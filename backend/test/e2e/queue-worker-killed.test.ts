import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type GroqSimulator, startGroqSimulator } from '../../sim/groq-simulator.js';
import { type BackendProcess, startBackendProcess, waitFor } from '../helpers/backend-process.js';
import {
  getStatus,
  pollUntilDone,
  postQueue,
  QUEUE_TEST_ENV,
  type QueuedBody,
  type StatusBody,
} from '../helpers/queue-http.js';
import { deletePrefix, startTestBackend, type TestBackend, testPrefix } from '../helpers/test-backend.js';

/**
 * Nothing lost: an instance killed with SIGKILL while its worker holds a job
 * leaves the job to another instance, which completes it within seconds
 * (stalled-job recovery with a short lock).
 */
describe('a worker killed mid-job', () => {
  const prefix = testPrefix('queue-kill');
  let simulator: GroqSimulator;
  let doomed: BackendProcess;
  let survivor: TestBackend | undefined;

  const env = {
    ...QUEUE_TEST_ENV,
    REDIS_PREFIX: prefix,
    QUEUE_CONCURRENCY: '1',
    QUEUE_LOCK_MS: '1000',
    GROQ_TIMEOUT_MS: '60000',
  };

  beforeAll(async () => {
    // Slow enough that the job is still running when its instance dies.
    simulator = await startGroqSimulator({ latencyMs: 60_000, apiKey: 'test-key' });
    doomed = await startBackendProcess({ ...env, GROQ_BASE_URL: simulator.url, INSTANCE_ID: 'doomed' });
  });

  afterAll(async () => {
    await doomed.kill();
    if (survivor) {
      await deletePrefix(survivor.runtime, prefix);
      await survivor.close();
    }
    await simulator.close();
  });

  it('completes the job on another instance', async () => {
    const posted = await postQueue(doomed.url, { message: `Hold this for me ${randomUUID()}` });
    expect(posted.status).toBe(202);
    const { jobId } = posted.json as QueuedBody;
    await waitFor(
      async () => ((await getStatus(doomed.url, jobId)).json as StatusBody & { state?: string }).state === 'active',
      10_000,
      'the doomed instance to start the job',
    );
    await waitFor(async () => simulator.stats().requests === 1, 10_000, 'its upstream call');

    survivor = await startTestBackend({ ...env, GROQ_BASE_URL: simulator.url, INSTANCE_ID: 'survivor' });
    await doomed.kill();
    const killedAt = Date.now();
    simulator.configure({ latencyMs: 20 });

    const done = await pollUntilDone(survivor.url, jobId, { timeoutMs: 20_000 });
    const recoveredInMs = Date.now() - killedAt;
    expect(done).toMatchObject({ status: 'completed', result: { response: expect.stringMatching(/^\[sim\] /) } });
    expect(simulator.stats().requests).toBe(2);
    expect(survivor.logs.text).toContain(`"jobId":"${jobId}"`);
    expect(survivor.logs.text).toMatch(/job stalled/);
    // Lock 1 s, stalled check every 1 s: picked up within a few seconds, not the default minute.
    expect(recoveredInMs).toBeLessThan(8000);
  });
});
