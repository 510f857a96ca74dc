import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type GroqSimulator, startGroqSimulator } from '../../sim/groq-simulator.js';
import {
  getStatus,
  pollUntilDone,
  postQueue,
  QUEUE_TEST_ENV,
  type QueuedBody,
  type StatusBody,
} from '../helpers/queue-http.js';
import { deletePrefix, startTestBackend, type TestBackend, testPrefix } from '../helpers/test-backend.js';

const SIM_LATENCY_MS = 350;

/**
 * Two instances, one worker each (QUEUE_CONCURRENCY=1), a slow simulator and a
 * backlog: places in line are the cluster's, and estimatedTime comes from the
 * pace the cluster measured.
 */
describe('queue positions and estimates across two instances', () => {
  const prefix = testPrefix('queue-positions');
  let simulator: GroqSimulator;
  let a: TestBackend;
  let b: TestBackend;

  beforeAll(async () => {
    simulator = await startGroqSimulator({ latencyMs: SIM_LATENCY_MS, apiKey: 'test-key' });
    const env = { ...QUEUE_TEST_ENV, REDIS_PREFIX: prefix, GROQ_BASE_URL: simulator.url, QUEUE_CONCURRENCY: '1' };
    [a, b] = await Promise.all([
      startTestBackend({ ...env, INSTANCE_ID: 'queue-a' }),
      startTestBackend({ ...env, INSTANCE_ID: 'queue-b' }),
    ]);
  });

  afterAll(async () => {
    await deletePrefix(a.runtime, prefix);
    await Promise.all([a.close(), b.close()]);
    await simulator.close();
  });

  async function queueMany(count: number, label: string): Promise<{ job: QueuedBody; postedAt: number }[]> {
    const queued: { job: QueuedBody; postedAt: number }[] = [];
    for (let index = 0; index < count; index += 1) {
      // Alternate instances: any instance takes a POST, any answers a poll.
      const posted = await postQueue(index % 2 === 0 ? a.url : b.url, { message: `${label} ${index} ${randomUUID()}` });
      expect(posted.status).toBe(202);
      queued.push({ job: posted.json as QueuedBody, postedAt: Date.now() });
    }
    return queued;
  }

  it('gives distinct places in arrival order that fall to completion, and honest estimates', async () => {
    // A first backlog, so the cluster has measured its pace ("a steady backlog").
    const warmUp = await queueMany(8, 'warm-up');
    await Promise.all(warmUp.map(({ job }) => pollUntilDone(a.url, job.jobId)));

    const jobs = await queueMany(12, 'backlog');
    const last = jobs.at(-1) as { job: QueuedBody; postedAt: number };
    const lastDone = pollUntilDone(b.url, last.job.jobId, { intervalMs: 20 }).then(() => Date.now());

    const history = new Map<string, number[]>();
    for (;;) {
      // Read from the back of the line to the front: a job starting between two reads then only makes the
      // later-read (earlier) jobs look closer, never two of them share a place (parallel reads could).
      const snapshot: { index: number; jobId: string; body: StatusBody }[] = [];
      for (let index = jobs.length - 1; index >= 0; index -= 1) {
        const { job } = jobs[index] as { job: QueuedBody };
        const body = (await getStatus(index % 2 === 0 ? b.url : a.url, job.jobId)).json as StatusBody;
        snapshot.unshift({ index, jobId: job.jobId, body });
      }
      const waiting = snapshot.filter(
        (entry): entry is typeof entry & { body: { status: 'processing'; position: number } } =>
          entry.body.status === 'processing' && entry.body.state === 'waiting',
      );
      const positions = waiting.map((entry) => entry.body.position);
      expect(new Set(positions).size).toBe(positions.length);
      expect(positions).toEqual([...positions].sort((x, y) => x - y));
      expect(positions.every((position) => position >= 1)).toBe(true);
      for (const entry of snapshot) {
        const place = entry.body.status === 'processing' ? entry.body.position : 0;
        history.set(entry.jobId, [...(history.get(entry.jobId) ?? []), place]);
      }
      if (snapshot.every((entry) => entry.body.status === 'completed')) {
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, 40));
    }

    for (const places of history.values()) {
      // Never moves back; ends at 0 (done).
      expect(places).toEqual([...places].sort((x, y) => y - x));
      expect(places.at(-1)).toBe(0);
    }
    // The last job really waited behind the others.
    expect(Math.max(...(history.get(last.job.jobId) ?? []))).toBeGreaterThanOrEqual(8);

    const tookSeconds = ((await lastDone) - last.postedAt) / 1000;
    const ratio = last.job.estimatedTime / tookSeconds;
    expect(ratio, `estimated ${last.job.estimatedTime} s, took ${tookSeconds.toFixed(2)} s`).toBeGreaterThanOrEqual(
      0.5,
    );
    expect(ratio, `estimated ${last.job.estimatedTime} s, took ${tookSeconds.toFixed(2)} s`).toBeLessThanOrEqual(2);
  });
});
