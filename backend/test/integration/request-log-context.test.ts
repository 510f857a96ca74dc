import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type GroqSimulator, startGroqSimulator } from '../../sim/groq-simulator.js';
import { postChat } from '../helpers/http-client.js';
import { pollUntilDone, postQueue, type QueuedBody } from '../helpers/queue-http.js';
import { deleteTestPrefix, startTestBackend, type TestBackend } from '../helpers/test-backend.js';

interface LogLine {
  msg: string;
  component?: string;
  requestId?: string;
}

/**
 * Modules below HTTP log with the logger they were built with; the request id
 * comes from the log context (AsyncLocalStorage), through every await, and two
 * requests in flight at once never lend each other theirs.
 */
describe('request id in the log lines of lower layers', () => {
  let simulator: GroqSimulator;
  let backend: TestBackend;
  const id = (name: string) => `${name}-${randomUUID()}`;
  const lines = (msg: string) =>
    backend.logs.lines.map((line) => JSON.parse(line) as LogLine).filter((line) => line.msg === msg);

  beforeAll(async () => {
    // Slow enough that two requests are in flight at the same time.
    simulator = await startGroqSimulator({ latencyMs: 150, apiKey: 'test-key' });
    backend = await startTestBackend({
      GROQ_BASE_URL: simulator.url,
      GROQ_API_KEY: 'test-key',
      UPSTREAM_MAX_ATTEMPTS: '2',
      UPSTREAM_RETRY_BASE_MS: '10',
      BREAKER_FAILURE_THRESHOLD: '1000',
      QUEUE_BACKOFF_MS: '50',
    });
  });

  beforeEach(() => simulator.reset());

  afterAll(async () => {
    await backend.close();
    await deleteTestPrefix(backend.prefix);
    await simulator.close();
  });

  it("gives each of two concurrent requests' gateway retries its own request id", async () => {
    simulator.configure({ failNext: 2, errorStatus: 500 });
    const ids = [id('first'), id('second')];
    const answers = await Promise.all(
      ids.map((requestId) =>
        postChat(backend.url, { message: `Retried ${requestId}` }, { headers: { 'x-request-id': requestId } }),
      ),
    );
    expect(answers.map((answer) => answer.status)).toEqual([200, 200]);
    const retries = lines('retrying upstream call').filter((line) => ids.includes(line.requestId ?? ''));
    expect(retries.map((line) => line.component)).toEqual(['llm-gateway', 'llm-gateway']);
    expect(retries.map((line) => line.requestId).sort()).toEqual([...ids].sort());
  });

  it("logs a follower's coalescing with the follower's id, not its leader's", async () => {
    const ids = [id('leader-or-follower'), id('follower-or-leader')];
    const question = { message: `Coalesced ${randomUUID()}` };
    const answers = await Promise.all(
      ids.map((requestId) => postChat(backend.url, question, { headers: { 'x-request-id': requestId } })),
    );
    expect(answers.map((answer) => answer.status)).toEqual([200, 200]);
    const coalesced = (answers.map((answer) => answer.json) as { coalesced: boolean }[]).map((body) => body.coalesced);
    const follower = ids[coalesced.indexOf(true)];
    expect(coalesced.filter(Boolean)).toHaveLength(1);
    const followed = lines('coalesced with an identical request in flight').filter((line) =>
      ids.includes(line.requestId ?? ''),
    );
    expect(followed).toEqual([expect.objectContaining({ component: 'coalescer', requestId: follower })]);
  });

  it("carries a queued job's POST request id into the worker's lines", async () => {
    const requestId = id('queued');
    simulator.configure({ failNext: 1, errorStatus: 500 });
    const posted = await postQueue(
      backend.url,
      { message: `Queued ${randomUUID()}` },
      { headers: { 'x-request-id': requestId } },
    );
    expect(posted.status).toBe(202);
    const done = await pollUntilDone(backend.url, (posted.json as QueuedBody).jobId);
    expect(done.status).toBe('completed');
    expect(lines('retrying upstream call').filter((line) => line.requestId === requestId)).toHaveLength(1);
  });

  it('adds no request id to lines logged outside any request', () => {
    const outside = backend.logs.lines
      .map((line) => JSON.parse(line) as LogLine)
      .filter((line) => line.msg !== 'request' && line.requestId === undefined);
    expect(outside.length).toBeGreaterThan(0);
  });
});
