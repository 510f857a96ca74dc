import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { httpFrom } from '../helpers/http-from.js';
import { type LocalStack, startLocalStack } from '../helpers/local-stack.js';

/**
 * The per-caller limit through Caddy: Caddy replaces a client's
 * X-Forwarded-For with the address it sees, and the backends believe the
 * header only from Caddy (loopback), so a forged header cannot make one
 * caller look like twenty, whichever instance answers.
 */

let stack: LocalStack;

beforeAll(async () => {
  stack = await startLocalStack(3, { MAX_REQUESTS_PER_MINUTE: '10' });
});

afterAll(async () => {
  await stack?.make('down');
});

describe('MAX_REQUESTS_PER_MINUTE=10 behind Caddy', () => {
  it('counts 20 requests with 20 forged X-Forwarded-For as one caller: 10 pass, 10 get 429', async () => {
    const answers = [];
    for (let index = 0; index < 20; index += 1) {
      answers.push(
        await httpFrom(`${stack.publicUrl}/api/chat`, {
          body: { message: `forged ${index} ${randomUUID()}` },
          headers: { 'X-Forwarded-For': `203.0.113.${index + 1}` },
          // Not 127.0.0.1: make up's own check request already counted against that caller.
          localAddress: '127.0.0.3',
        }),
      );
    }
    const statuses = answers.map((answer) => answer.status);
    expect(statuses.filter((status) => status === 200)).toHaveLength(10);
    expect(statuses.filter((status) => status === 429)).toHaveLength(10);
    expect(statuses.slice(10).every((status) => status === 429)).toBe(true);
    // Several instances answered, so the count lives in Redis, not in one process.
    const instances = new Set(answers.map((answer) => answer.headers['x-instance-id']));
    expect(instances.size).toBeGreaterThanOrEqual(2);
    const refused = answers[19];
    expect(refused?.json()).toMatchObject({ error: { code: 'rate_limited' } });
    expect(Number(refused?.headers['retry-after'])).toBeGreaterThan(0);
  });

  it('still serves another caller', async () => {
    const other = await httpFrom(`${stack.publicUrl}/api/chat`, {
      body: { message: `another caller ${randomUUID()}` },
      localAddress: '127.0.0.4',
    });
    expect(other.status).toBe(200);
    expect(other.headers['ratelimit-remaining']).toBe('9');
  });
});
