import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from '../helpers/http-client.js';
import { callerIp, startUpstreamCluster, type UpstreamCluster } from '../helpers/upstream-cluster.js';

/**
 * The queued burst with no fallback: jobs wait for quota instead of failing.
 * 40 jobs overflow one window's quota by a third, so the governor must hold
 * 10 jobs back for a window, across three instances, without a single 429.
 * The window is 10 s (QUOTA_WINDOW_MS, in the simulator too), not Groq's
 * minute: the same overflow and the same rules, in a sixth of the time.
 */
const JOBS = 40;
const RPM = 30;
const WINDOW_MS = 10_000;

interface StatusBody {
  status: 'completed' | 'failed' | 'processing' | 'not_found';
  result?: { provider: string; response: string };
}

describe('queued burst without a fallback (3 instances, 1 Redis, primary 30 requests / 6,000 tokens per 10 s)', () => {
  let cluster: UpstreamCluster;

  beforeAll(async () => {
    cluster = await startUpstreamCluster('queue-burst', { fallback: false, windowMs: WINDOW_MS });
  });

  afterAll(async () => {
    await cluster.close();
  });

  it('completes every job, the primary never 429s and never takes more than 30 calls in any window', async () => {
    const started = Date.now();
    const jobs = await Promise.all(
      Array.from({ length: JOBS }, async (_, index) => {
        const ip = callerIp(index);
        const response = await request(`${cluster.at(index).url}/api/chat/queue`, {
          body: { message: `Queued question ${index}: how do I get going on chore ${index}?` },
          headers: { 'x-forwarded-for': ip },
        });
        expect(response.status).toBe(202);
        return { ip, index, jobId: (response.json as { jobId: string }).jobId, doneAt: 0 };
      }),
    );

    const pending = new Set(jobs);
    const deadline = started + 120_000;
    while (pending.size > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 250));
      await Promise.all(
        [...pending].map(async (job) => {
          const status = await request(`${cluster.at(job.index + 1).url}/api/chat/status/${job.jobId}`, {
            headers: { 'x-forwarded-for': job.ip },
          });
          const answer = status.json as StatusBody;
          expect(answer.status).not.toBe('failed');
          if (answer.status === 'completed') {
            expect(answer.result?.provider).toBe('groq');
            job.doneAt = Date.now();
            pending.delete(job);
          }
        }),
      );
    }
    expect(pending.size).toBe(0);

    const stats = cluster.primary.stats();
    expect(stats.byStatus['429']).toBeUndefined();
    expect(stats.byStatus['200']).toBe(JOBS);
    expect(stats.maxCallsPerMinute).toBeLessThanOrEqual(RPM);
    const times = stats.calls.map((call) => call.at);
    // The backlog really overflowed a window: the last call had to wait for the first to age out.
    expect(Math.max(...times) - Math.min(...times)).toBeGreaterThanOrEqual(WINDOW_MS);
    const logs = cluster.backends.map((backend) => backend.logs.text).join('\n');
    expect(logs).toContain('job delayed: upstream at capacity');

    const firstWindow = times.filter((at) => at < Math.min(...times) + WINDOW_MS).length;
    const slowestMs = Math.max(...jobs.map((job) => job.doneAt - started));
    process.stdout.write(
      `[measure] queued burst: ${JOBS} jobs, ${firstWindow}/${RPM} primary calls in the first window ` +
        `(${Math.round((firstWindow / RPM) * 100)}% of the request quota), max ${stats.maxCallsPerMinute} in any ` +
        `${WINDOW_MS / 1000} s, no 429; slowest job answered after ${Math.round(slowestMs / 1000)} s\n`,
    );
  });
});
