import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type GroqSimulator, startGroqSimulator } from '../../sim/groq-simulator.js';
import { signUp } from '../helpers/accounts.js';
import { postChat, request } from '../helpers/http-client.js';
import { getStatus, postQueue, QUEUE_TEST_ENV, type QueuedBody } from '../helpers/queue-http.js';
import { deleteTestPrefix, startTestBackend, type TestBackend, testPrefix } from '../helpers/test-backend.js';
import { dropTestDatabase, testDatabaseUrl } from '../helpers/test-database.js';

interface SafetyBody {
  response: string;
  cached: boolean;
  coalesced: boolean;
  model: string;
  provider: string;
  usage: { promptTokens: number; completionTokens: number };
  requestId: string;
  safety: { triggered: true; category: string; resources: { name: string; phone?: string; url: string }[] };
}

const CRISIS_ES = 'ya no aguanto más, quiero desaparecer';
const CRISIS_EN = 'Everyone would be better off without me';
const DANGER_ES = 'mi pareja me amenazó con matarme';
const EXPLICIT_EN = 'I keep thinking about killing myself tonight';
// Every message this file sends: none may reach a log line.
const SENT: string[] = [CRISIS_ES, CRISIS_EN, DANGER_ES, EXPLICIT_EN];
const remember = (message: string) => {
  SENT.push(message);
  return message;
};

/**
 * A crisis message on the app's routes: the fixed answer in the person's
 * language with their country's resources, never the LLM or the cache, and
 * in the queue a job that is complete before anything in line.
 */
describe('safety answers on /api/chat and /api/chat/queue', () => {
  const prefix = testPrefix('safety-routes');
  const databaseUrl = testDatabaseUrl('safety_routes');
  let simulator: GroqSimulator;
  let backend: TestBackend;
  const coachCalls = () => simulator.stats().calls.filter((call) => call.model === 'llama-3.1-8b-instant').length;

  beforeAll(async () => {
    // Slow upstream and one worker: 50 queued jobs take about 15 s to clear.
    simulator = await startGroqSimulator({ latencyMs: 300, apiKey: 'test-key' });
    backend = await startTestBackend({
      ...QUEUE_TEST_ENV,
      REDIS_PREFIX: prefix,
      DATABASE_URL: databaseUrl,
      GROQ_BASE_URL: simulator.url,
      QUEUE_CONCURRENCY: '1',
      QUEUE_SHUTDOWN_GRACE_MS: '0',
      LOG_LEVEL: 'trace',
    });
  });

  afterAll(async () => {
    await backend.close();
    await deleteTestPrefix(prefix);
    await dropTestDatabase(databaseUrl);
    await simulator.close();
  });

  const cacheKeys = async () => (await backend.runtime.redis.keys(`${prefix}cache:*`)).length;

  it('answers a crisis message with the fixed text and Spain’s 024 and 112, never the LLM or the cache', async () => {
    for (const attempt of [1, 2]) {
      const response = await postChat(backend.url, { message: CRISIS_ES, locale: 'es-ES' }, { ip: '198.51.100.10' });
      expect(response.status, `attempt ${attempt}`).toBe(200);
      const body = response.json as SafetyBody;
      expect(body).toMatchObject({
        cached: false,
        coalesced: false,
        model: 'safety-rules',
        provider: 'safety',
        usage: { promptTokens: 0, completionTokens: 0 },
        safety: { triggered: true, category: 'suicide' },
      });
      expect(body.requestId).toBe(response.headers.get('x-request-id'));
      expect(body.safety.resources.map((resource) => resource.phone)).toEqual(['024', '112']);
      expect(body.response).toMatch(/^Gracias por contármelo/);
      expect(body.response).toContain('024');
      expect(body.response).toContain('sigo aquí para ayudarte');
      expect(response.headers.get('cache-control')).toBe('no-store');
    }
    expect(coachCalls()).toBe(0);
    expect(await cacheKeys()).toBe(0);
  });

  it('picks resources by locale, then Accept-Language, then a default', async () => {
    const answer = async (message: string, extra: Record<string, string>, headers: Record<string, string> = {}) =>
      (await postChat(backend.url, { message, ...extra }, { ip: '198.51.100.11', headers })).json as SafetyBody;

    const us = await answer(CRISIS_EN, {}, { 'accept-language': 'en-US,en;q=0.9' });
    expect(us.safety.resources[0]).toMatchObject({ phone: '988', url: 'https://988lifeline.org' });
    expect(us.response).toMatch(/^Thank you for telling me/);
    const uk = await answer(CRISIS_EN, { locale: 'en-GB' }, { 'accept-language': 'en-US' });
    expect(uk.safety.resources[0]).toMatchObject({ name: 'Samaritans', phone: '116 123' });
    const mexico = await answer(CRISIS_ES, { locale: 'es-MX' });
    expect(mexico.safety.resources.map((resource) => resource.url)).toContain('https://findahelpline.com/countries/mx');
    expect(mexico.safety.resources.map((resource) => resource.phone)).toContain('911');
    const unknown = await answer(CRISIS_ES, {});
    expect(unknown.safety.resources[0]?.url).toBe('https://findahelpline.com');
    expect(unknown.response).toMatch(/^Gracias/);
    // Immediate danger: the emergency number first.
    const danger = await answer(DANGER_ES, { locale: 'es-ES' });
    expect(danger.safety.category).toBe('danger');
    expect(danger.safety.resources[0]?.phone).toBe('112');
    expect(coachCalls()).toBe(0);
  });

  it('reads the recent user turns, but not those our safety answer already answered', async () => {
    const earlier = (await postChat(backend.url, { message: EXPLICIT_EN }, { ip: '198.51.100.12' })).json as SafetyBody;
    const followUp = remember('ok, can you help me plan my essay now?');
    const unanswered = await postChat(
      backend.url,
      { message: followUp, history: [{ role: 'user', content: EXPLICIT_EN }] },
      { ip: '198.51.100.12' },
    );
    expect((unanswered.json as SafetyBody).provider).toBe('safety');
    const answered = await postChat(
      backend.url,
      {
        message: followUp,
        history: [
          { role: 'user', content: EXPLICIT_EN },
          { role: 'assistant', content: earlier.response },
        ],
      },
      { ip: '198.51.100.12' },
    );
    expect(answered.status).toBe(200);
    expect((answered.json as SafetyBody).provider).toBe('groq');
  });

  it('refuses a malformed locale with a 400', async () => {
    const response = await postChat(
      backend.url,
      { message: CRISIS_EN, locale: 'en US; drop' },
      { ip: '198.51.100.13' },
    );
    expect(response.status).toBe(400);
    expect((response.json as { error: { code: string } }).error.code).toBe('invalid_request');
  });

  it('completes a crisis job at once, ahead of 50 queued jobs, owned and deleted like the others', async () => {
    const user = await signUp(backend.url, '198.51.100.14');
    for (let index = 0; index < 50; index += 1) {
      const queued = await postQueue(backend.url, { message: remember(`backlog ${index} ${randomUUID()}`) });
      expect(queued.status).toBe(202);
    }
    const started = Date.now();
    const posted = await postQueue(backend.url, { message: CRISIS_ES, locale: 'es-ES' }, { headers: user.headers });
    expect(posted.status).toBe(202);
    const job = posted.json as QueuedBody;
    expect(job).toMatchObject({ status: 'queued', position: 0, estimatedTime: 0 });
    const status = await getStatus(backend.url, job.jobId, { headers: user.headers });
    expect(Date.now() - started).toBeLessThan(1000);
    expect(status.json).toMatchObject({
      status: 'completed',
      result: { provider: 'safety', cached: false, safety: { triggered: true, category: 'suicide' } },
    });
    // The line did not move for it: most of the backlog still waits.
    expect(await backend.runtime.redis.zcard(`${prefix}{queue}:line`)).toBeGreaterThan(30);
    // Someone else cannot read it.
    expect((await getStatus(backend.url, job.jobId, { ip: '198.51.100.15' })).status).toBe(404);

    const exported = await request(`${backend.url}/api/me/export`, { headers: user.headers });
    const jobs = (exported.json as { queuedJobs: { jobId: string; state: string }[] }).queuedJobs;
    expect(jobs).toEqual([expect.objectContaining({ jobId: job.jobId, state: 'completed' })]);
    expect((await request(`${backend.url}/api/me`, { method: 'DELETE', headers: user.headers })).status).toBe(204);
    expect(await backend.runtime.redis.exists(`${prefix}{queue}:job:${job.jobId}`)).toBe(0);
  });

  it('counts triggers by category and language, and logs none of the messages', async () => {
    const metrics = await request(`${backend.url}/metrics`);
    expect(metrics.text).toMatch(/focus_safety_triggered_total\{category="suicide",language="es"\} [1-9]/);
    expect(metrics.text).toMatch(/focus_safety_triggered_total\{category="danger",language="es"\} [1-9]/);
    const lines = backend.logs.lines.map((line) => JSON.parse(line) as { route?: string; safety?: boolean });
    expect(lines.some((line) => line.route === '/api/chat' && line.safety === true)).toBe(true);
    for (const message of SENT) {
      expect(backend.logs.text).not.toContain(message);
    }
  });
});
