import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type GroqSimulator, startGroqSimulator } from '../../sim/groq-simulator.js';
import { STALLED_BODY, STALLED_HEADERS, stallAfter } from '../helpers/slow-client.js';
import { readEvents } from '../helpers/sse.js';
import { deleteTestPrefix, startTestBackend, type TestBackend, testPrefix } from '../helpers/test-backend.js';

/** A client that trickles its request cannot hold a connection open; a long answer is not cut. */
describe('slow clients, straight to an instance', () => {
  const prefix = testPrefix('slow');
  let simulator: GroqSimulator;
  let backend: TestBackend;
  let port: number;

  beforeAll(async () => {
    simulator = await startGroqSimulator({ latencyMs: 10, chunkDelayMs: 150 });
    backend = await startTestBackend({
      REDIS_PREFIX: prefix,
      GROQ_BASE_URL: simulator.url,
      GROQ_RPM: '0',
      HTTP_HEADERS_TIMEOUT_MS: '1000',
      HTTP_REQUEST_TIMEOUT_MS: '2000',
    });
    port = Number(new URL(backend.url).port);
  });

  afterAll(async () => {
    await backend?.close();
    await deleteTestPrefix(prefix);
    await simulator?.close();
  });

  it('cuts a body that stalls after 6 bytes once HTTP_REQUEST_TIMEOUT_MS has passed', async () => {
    const { closedAfterMs, answer } = await stallAfter(port, STALLED_BODY, 10_000);
    expect(closedAfterMs).toBeGreaterThan(1500);
    expect(closedAfterMs).toBeLessThan(4500);
    expect(answer).toMatch(/^HTTP\/1.1 408/);
  });

  it('cuts headers that never end once HTTP_HEADERS_TIMEOUT_MS has passed', async () => {
    const { closedAfterMs } = await stallAfter(port, STALLED_HEADERS, 10_000);
    expect(closedAfterMs).toBeGreaterThan(500);
    expect(closedAfterMs).toBeLessThan(3500);
  });

  it('lets a stream run longer than those timeouts', async () => {
    const response = await fetch(`${backend.url}/api/chat/stream`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ message: 'A long, slow answer please' }),
    });
    const events = await readEvents(response);
    expect(events.at(-1)?.event).toBe('done');
    expect(events.at(-1)?.at).toBeGreaterThan(2500);
  });
});
