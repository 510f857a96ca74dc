import { afterAll, describe, expect, it } from 'vitest';
import { type BackendProcess, startBackendProcess } from '../helpers/backend-process.js';
import { type ChatBody, postChat } from '../helpers/http-client.js';
import { deleteTestPrefix, testPrefix } from '../helpers/test-backend.js';

/**
 * The `npm start` path: the compiled dist/src/main.js as a real process. With
 * no Groq key or URL it answers from the bundled simulator, except in
 * production, where it refuses to start rather than answer canned text.
 */
describe('npm start', () => {
  const prefix = testPrefix('npm-start');
  let backend: BackendProcess | undefined;

  afterAll(async () => {
    await backend?.kill();
    await deleteTestPrefix(prefix);
  });

  it('runs on the bundled simulator without GROQ_API_KEY, says so, and answers', async () => {
    backend = await startBackendProcess({ REDIS_PREFIX: prefix }, { entry: 'build' });
    expect(backend.output()).toMatch(/GROQ_API_KEY is not set: answering from the bundled Groq simulator/);
    const response = await postChat(backend.url, { message: 'I cannot start my essay' });
    expect(response.status).toBe(200);
    expect(response.json).toMatchObject({ cached: false, provider: 'groq', model: 'llama-3.1-8b-instant' });
    expect((response.json as ChatBody).response).toMatch(/^\[sim\] /);
    expect(response.headers.get('x-instance-id')).toBe(backend.instanceId);
  });

  it('exits 0 on SIGTERM', async () => {
    expect(await backend?.stop()).toBe(0);
    expect(backend?.output()).toMatch(/"msg":"stopped"/);
  });

  it('refuses to start in production without a key, rather than answer from the simulator', async () => {
    const failure = await startBackendProcess(
      { REDIS_PREFIX: prefix, NODE_ENV: 'production' },
      { entry: 'build' },
    ).then(
      () => undefined,
      (error: Error) => error,
    );
    expect(failure?.message).toMatch(/exited early \(code 1/);
    expect(failure?.message).toMatch(/^GROQ_API_KEY: required when ALLOW_EMBEDDED_SIMULATOR=false/m);
  });

  it('stops at once on a bad configuration, naming every bad variable', async () => {
    const started = Date.now();
    const failure = await startBackendProcess(
      {
        REDIS_PREFIX: prefix,
        PORT: '0',
        MAX_REQUESTS_PER_MINUTE: 'many',
        LOG_LEVEL: 'loud',
      },
      { entry: 'build' },
    ).then(
      () => undefined,
      (error: Error) => error,
    );
    expect(failure?.message).toMatch(/exited early \(code 1/);
    expect(failure?.message).toMatch(/^MAX_REQUESTS_PER_MINUTE: /m);
    expect(failure?.message).toMatch(/^LOG_LEVEL: /m);
    // The helper noticed the exit instead of polling until its 20 s timeout.
    expect(Date.now() - started).toBeLessThan(15_000);
  });
});
