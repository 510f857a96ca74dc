import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from '../helpers/http-client.js';
import { callerIp, startUpstreamCluster, type UpstreamCluster } from '../helpers/upstream-cluster.js';

/**
 * The queued burst with no fallback: jobs wait for quota instead of failing.
 * 40 jobs, not the 120 of the synchronous burst: at 30 requests a minute,
 * 120 would take four minutes of CI. 40 still overflows one minute's quota
 * by a third, so the governor must hold 10 jobs back for a minute, across
 * three instances, without a single 429.
 */
const JOBS = 40;
const RPM = 30;

interface StatusBody {
  status: 'completed' | 'failed' | 'processing' | 'not_found';
  result?: { provider: string; response: string };
}

describe('queued burst without a fallback (3 instances, 1 Redis, primary 30 RPM / 6,000 TPM)', () => {
  let cluster: UpstreamCluster;

  beforeAll(async () => {
    cluster = await startUpstreamCluster('queue-burst', { fallback: false });
  });

  afterAll(async () => {
    await cluster.close();
  });

  it('completes every job, the primary never 429s and never takes more than 30 calls in any minute', async () => {
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
    const deadline = started + 150_000;
    while (pending.size > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 1000));
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
    // The backlog really overflowed a minute: the last call had to wait for the first to age out.
    expect(Math.max(...times) - Math.min(...times)).toBeGreaterThanOrEqual(60_000);
    const logs = cluster.backends.map((backend) => backend.logs.text).join('\n');
    expect(logs).toContain('job delayed: upstream at capacity');

    const firstMinute = times.filter((at) => at < Math.min(...times) + 60_000).length;
    const slowestMs = Math.max(...jobs.map((job) => job.doneAt - started));
    process.stdout.write(
      `[measure] queued burst: ${JOBS} jobs, ${firstMinute}/${RPM} primary calls in the first minute ` +
        `(${Math.round((firstMinute / RPM) * 100)}% of the request quota), max ${stats.maxCallsPerMinute} in any ` +
        `60 s, no 429; slowest job answered after ${Math.round(slowestMs / 1000)} s\n`,
    );
  });
});
