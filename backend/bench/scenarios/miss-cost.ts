import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { startGroqSimulator } from '../../sim/groq-simulator.js';
import { startBackendProcess } from '../../test/helpers/backend-process.js';
import { startRedisServer } from '../../test/helpers/redis-server.js';
import { report, runScenario, unlimitedBackendEnv } from '../harness.js';
import { watchCommandsSent } from '../redis-commands.js';

/**
 * What one cache miss on POST /api/chat costs Redis: one compiled instance on
 * a redis-server of its own (so nothing else moves its counters), 400 new
 * questions one after another, INFO deltas per request: commands, bytes
 * sent to Redis. INFO's command count includes the commands run inside
 * scripts; MONITOR tells the commands the app sent (its lines from a client
 * address, not "lua"), which is what a round trip costs. Signed in and anonymous.
 */
const SCENARIO = 'miss-cost';
const QUESTIONS = Number(process.env.BENCH_QUESTIONS ?? 400);

async function info(redis: Redis) {
  const stats = await redis.info('stats');
  const commands = await redis.info('commandstats');
  const field = (name: string) => Number(new RegExp(`${name}:(\\d+)`).exec(stats)?.[1] ?? 0);
  const byCommand: Record<string, number> = {};
  for (const [, name, calls] of commands.matchAll(/cmdstat_([a-z|]+):calls=(\d+)/g)) {
    byCommand[name as string] = Number(calls);
  }
  return { commands: field('total_commands_processed'), bytesIn: field('total_net_input_bytes'), byCommand };
}

runScenario(async () => {
  const server = await startRedisServer();
  const simulator = await startGroqSimulator({ latencyMs: 0, apiKey: 'bench-key' });
  const backend = await startBackendProcess(
    {
      ...unlimitedBackendEnv({ redisUrl: server.url, prefix: 'bench:', upstreamUrl: simulator.url }),
      DATABASE_URL: 'postgres://postgres@127.0.0.1:5432/focus_bench',
      USER_REQUESTS_PER_MINUTE: '1000000000',
      // A budget on, as by default (its reservation and settlement are part of a signed-in miss), too big to run out.
      USER_TOKENS_PER_DAY: '1000000000',
    },
    { stdout: 'discard', entry: 'build' },
  );
  const redis = new Redis(server.url);
  const sent = await watchCommandsSent(server.url);
  try {
    const signUp = await fetch(`${backend.url}/api/auth/device`, { method: 'POST' });
    const { token } = (await signUp.json()) as { token: string };
    for (const [caller, headers] of [
      ['anonymous', {}],
      ['signed-in', { authorization: `Bearer ${token}` }],
    ] as const) {
      const ask = () =>
        fetch(`${backend.url}/api/chat`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...headers },
          body: JSON.stringify({ message: `A new question ${randomUUID()}` }),
        }).then((response) => response.text());
      for (let index = 0; index < 20; index += 1) {
        await ask();
      }
      // Past the stats flush of the warm-up, so its batch is not counted below.
      await new Promise((resolve) => setTimeout(resolve, 500));
      const before = await info(redis);
      sent.take();
      for (let index = 0; index < QUESTIONS; index += 1) {
        await ask();
      }
      await new Promise((resolve) => setTimeout(resolve, 500));
      const after = await info(redis);
      const sentByName = Object.fromEntries(
        Object.entries(sent.take())
          .map(([name, count]) => [name, Math.round((count / QUESTIONS) * 100) / 100] as const)
          .filter(([, perMiss]) => perMiss >= 0.05),
      );
      const perRequest: Record<string, number> = {};
      for (const [name, calls] of Object.entries(after.byCommand)) {
        const delta = (calls - (before.byCommand[name] ?? 0)) / QUESTIONS;
        if (delta >= 0.05 && name !== 'info') {
          perRequest[name] = Math.round(delta * 100) / 100;
        }
      }
      report(SCENARIO, {
        caller,
        questions: QUESTIONS,
        // Minus the two INFO commands of the measurement itself.
        commandsSentPerMiss: Math.round(Object.values(sentByName).reduce((sum, count) => sum + count, 0) * 10) / 10,
        commandsSentByName: sentByName,
        commandsRunPerMiss: Math.round(((after.commands - before.commands - 2) / QUESTIONS) * 10) / 10,
        bytesToRedisPerMiss: Math.round((after.bytesIn - before.bytesIn) / QUESTIONS),
        commandsRunByName: perRequest,
      });
    }
  } finally {
    sent.stop();
    await redis.quit();
    await backend.stop();
    await simulator.close();
    await server.kill();
  }
});
