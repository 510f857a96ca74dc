import { Job, Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { bullPrefix, CHAT_QUEUE_NAME } from '../../src/queue/queue-keys.js';
import { startBackendProcess } from '../../test/helpers/backend-process.js';
import { startRedisServer } from '../../test/helpers/redis-server.js';
import { report, runLoad, runScenario } from '../harness.js';
import { type CommandsSent, watchCommandsSent } from '../redis-commands.js';

/**
 * What thousands of apps polling GET /api/chat/status/:jobId every 2 s cost:
 * one backend process (ROLE=api, so the jobs stay queued) on a redis-server of
 * its own (so nothing else moves its counters), a backlog of BACKLOG jobs, and
 * polls of the last one: the most expensive answer (processing, with its place
 * in line and estimate). Reported: polls a second, the Redis commands and bytes
 * of one poll (MONITOR: what the app sends; INFO: what Redis runs), and what
 * the same answer would cost from BullMQ alone (the question of
 * backend/src/queue/README.md): its public API has no rank of a job, so a
 * place in line means listing the prioritized jobs (getPrioritized), and the
 * owner, answer or error means reading the job's hash, conversation included.
 */
const SCENARIO = 'queue-status-poll';
const BACKLOG = Number(process.env.BENCH_BACKLOG ?? 400);
const POLLS = 400;

async function commandsRun(redis: Redis): Promise<{ commands: number; bytesOut: number }> {
  const stats = await redis.info('stats');
  const field = (name: string) => Number(new RegExp(`${name}:(\\d+)`).exec(stats)?.[1] ?? 0);
  return { commands: field('total_commands_processed'), bytesOut: field('total_net_output_bytes') };
}

/** Commands, reply bytes and milliseconds per call of `read`, over `times` calls one after another. */
async function costOf(redis: Redis, sent: CommandsSent, times: number, read: () => Promise<unknown>) {
  const before = await commandsRun(redis);
  sent.take();
  const started = performance.now();
  for (let index = 0; index < times; index += 1) {
    await read();
  }
  const ms = (performance.now() - started) / times;
  // Let MONITOR's last lines arrive.
  await new Promise((resolve) => setTimeout(resolve, 200));
  const after = await commandsRun(redis);
  const round = (value: number) => Math.round(value * 100) / 100;
  const byName = Object.fromEntries(Object.entries(sent.take()).map(([name, count]) => [name, round(count / times)]));
  return {
    commandsSent: round(Object.values(byName).reduce((sum, count) => sum + count, 0)),
    commandsSentByName: byName,
    // Minus the INFO of the measurement itself.
    commandsRun: round((after.commands - before.commands - 1) / times),
    replyBytes: Math.round((after.bytesOut - before.bytesOut) / times),
    ms: round(ms),
  };
}

runScenario(async () => {
  const server = await startRedisServer();
  const prefix = 'bench:';
  const backend = await startBackendProcess(
    {
      REDIS_URL: server.url,
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
  const redis = new Redis(server.url);
  const sent = await watchCommandsSent(server.url);
  const queueConnection = new Redis(server.url);
  const queue = new Queue(CHAT_QUEUE_NAME, { connection: queueConnection, prefix: bullPrefix(prefix) });
  try {
    const headers = { 'content-type': 'application/json' };
    let jobId = '';
    for (let index = 0; index < BACKLOG; index += 1) {
      // Distinct callers, as in real use: each job is first in its owner's line (priority 1).
      const body = JSON.stringify({ message: `Backlog message ${index}: how do I start on chore ${index}?` });
      const posted = await fetch(`${backend.url}/api/chat/queue`, {
        method: 'POST',
        headers: { ...headers, 'x-forwarded-for': `10.1.${Math.floor(index / 250)}.${(index % 250) + 1}` },
        body,
      });
      if (posted.status !== 202) {
        throw new Error(`queueing answered ${posted.status}: ${await posted.text()}`);
      }
      jobId = ((await posted.json()) as { jobId: string }).jobId;
    }
    const lastCaller = `10.1.${Math.floor((BACKLOG - 1) / 250)}.${((BACKLOG - 1) % 250) + 1}`;
    const poll = () =>
      fetch(`${backend.url}/api/chat/status/${jobId}`, { headers: { 'x-forwarded-for': lastCaller } }).then(
        (response) => response.json() as Promise<{ position?: number }>,
      );
    const probe = await poll();
    if (probe.position !== BACKLOG) {
      throw new Error(`expected the polled job at position ${BACKLOG}, got ${JSON.stringify(probe)}`);
    }
    const perPoll = await costOf(redis, sent, POLLS, poll);
    const ledgerRead = await costOf(redis, sent, POLLS, () =>
      redis
        .pipeline()
        .hmget(`${prefix}{queue}:job:${jobId}`, 'owner', 'state', 'result', 'error')
        .zrank(`${prefix}{queue}:line`, jobId)
        .exec(),
    );
    // BullMQ alone, by its public API: the job (owner, state, answer) and its place among the prioritized.
    const bullmqPublic = await costOf(redis, sent, 50, async () => {
      const job = await Job.fromId(queue, jobId);
      const state = await job?.getState();
      const line = await queue.getPrioritized(0, -1);
      return { state, position: line.findIndex((entry) => entry.id === jobId) + 1 };
    });
    const bullmqCounts = await costOf(redis, sent, POLLS, () => queue.getCountsPerPriority([1, 2, 3]));
    // Its internal prioritized set (not an API): one ZRANK, but blind to the delayed and the recovered.
    const prioritized = `${bullPrefix(prefix)}:${CHAT_QUEUE_NAME}:prioritized`;
    if ((await redis.zrank(prioritized, jobId)) !== BACKLOG - 1) {
      throw new Error(`expected the polled job last in ${prioritized}`);
    }
    const bullmqInternalRank = await costOf(redis, sent, POLLS, () => redis.zrank(prioritized, jobId));
    // MONITOR would slow Redis down under load.
    sent.stop();
    const load = await runLoad({
      url: backend.url,
      path: `/api/chat/status/${jobId}`,
      durationSeconds: 10,
      connections: 20,
      headers: { 'x-forwarded-for': lastCaller },
    });
    // Apps poll every 2 s: how many could one instance follow at this rate.
    report(SCENARIO, {
      ...load,
      backlog: BACKLOG,
      pollersAt2s: load.requestsPerSecond * 2,
      perPoll,
      ledgerRead,
      bullmqPublicRead: bullmqPublic,
      bullmqCountsPerPriority: bullmqCounts,
      bullmqInternalRank,
    });
  } finally {
    sent.stop();
    await queue.close();
    await queueConnection.quit();
    await redis.quit();
    await backend.stop();
    await server.kill();
  }
});
