import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type GroqSimulator, startGroqSimulator } from '../../sim/groq-simulator.js';
import { waitFor } from '../helpers/backend-process.js';
import { getStatus, pollUntilDone, postQueue, QUEUE_TEST_ENV, type QueuedBody } from '../helpers/queue-http.js';
import { deletePrefix, startTestBackend, type TestBackend, testPrefix } from '../helpers/test-backend.js';

/** A graceful shutdown finishes the jobs its worker holds, or hands them back to the queue after the grace period. */
describe('queue worker at shutdown', () => {
  let simulator: GroqSimulator;
  const started: TestBackend[] = [];

  async function backend(prefix: string, env: Record<string, string> = {}): Promise<TestBackend> {
    const instance = await startTestBackend({
      ...QUEUE_TEST_ENV,
      REDIS_PREFIX: prefix,
      GROQ_BASE_URL: simulator.url,
      GROQ_TIMEOUT_MS: '60000',
      QUEUE_CONCURRENCY: '1',
      ...env,
    });
    started.push(instance);
    return instance;
  }

  async function queueAndWaitUntilUpstream(instance: TestBackend): Promise<string> {
    const { jobId } = (await postQueue(instance.url, { message: `Keep going ${randomUUID()}` })).json as QueuedBody;
    await waitFor(async () => simulator.stats().requests === 1, 10_000, 'the job to reach the upstream');
    return jobId;
  }

  beforeAll(async () => {
    simulator = await startGroqSimulator({ apiKey: 'test-key' });
  });

  afterEach(async () => {
    simulator.reset();
    // The last one started is still running (the others were stopped by the test).
    const last = started.at(-1);
    if (last) {
      await deletePrefix(last.runtime, last.prefix);
    }
    await Promise.all(started.splice(0).map((instance) => instance.close()));
  });

  afterAll(async () => {
    await simulator.close();
  });

  it('finishes an active job before stopping', async () => {
    const prefix = testPrefix('queue-shutdown-finish');
    simulator.configure({ latencyMs: 700 });
    const leaving = await backend(prefix, { QUEUE_SHUTDOWN_GRACE_MS: '10000' });
    const jobId = await queueAndWaitUntilUpstream(leaving);

    await leaving.close();
    const reader = await backend(prefix, { ROLE: 'api' });
    expect((await getStatus(reader.url, jobId)).json).toMatchObject({ status: 'completed' });
    expect(simulator.stats().requests).toBe(1);
  });

  it('hands a job that outlasts the grace period back to the queue, where another instance completes it', async () => {
    const prefix = testPrefix('queue-shutdown-handback');
    simulator.configure({ latencyMs: 60_000 });
    const leaving = await backend(prefix, { QUEUE_SHUTDOWN_GRACE_MS: '300' });
    const jobId = await queueAndWaitUntilUpstream(leaving);

    const behind = (await postQueue(leaving.url, { message: `Next in line ${randomUUID()}` })).json as QueuedBody;
    expect(behind.position).toBe(1);

    const stopping = Date.now();
    await leaving.close();
    expect(Date.now() - stopping).toBeLessThan(5000);
    expect(leaving.logs.text).toMatch(/job handed back at shutdown/);

    // BullMQ puts a handed-back job at the front of its wait list: the places shown must say so.
    const reader = await backend(prefix, { ROLE: 'api' });
    expect((await getStatus(reader.url, jobId)).json).toMatchObject({ state: 'waiting', position: 1 });
    expect((await getStatus(reader.url, behind.jobId)).json).toMatchObject({ state: 'waiting', position: 2 });

    simulator.configure({ latencyMs: 20 });
    const successor = await backend(prefix);
    const done = await pollUntilDone(successor.url, jobId, { timeoutMs: 10_000 });
    expect(done).toMatchObject({ status: 'completed' });
    expect(await pollUntilDone(successor.url, behind.jobId, { timeoutMs: 10_000 })).toMatchObject({
      status: 'completed',
    });
    expect(simulator.stats().requests).toBe(3);
  });
});
