import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isListening } from '../../../deploy/local/ports.js';
import { alive, daemonPid, type RunState } from '../../../deploy/local/stack.js';
import { request } from '../helpers/http-client.js';
import { type LocalStack, startLocalStack } from '../helpers/local-stack.js';

/**
 * `make up N=3` for real: three backend processes, the Groq simulator and
 * Caddy on random ports under PM2, then requests through Caddy only. The last
 * test is `make down`, which must leave no process, no PM2 daemon and no
 * listening port.
 */

interface ChatAnswer {
  response: string;
  cached: boolean;
}

interface SimulatorStats {
  requests: number;
}

let stack: LocalStack;
let state: RunState;

const chat = (message: string, headers: Record<string, string> = {}) =>
  request(`${stack.publicUrl}/api/chat`, { body: { message }, headers });

async function simulatorRequests(): Promise<number> {
  const url = state.simulator?.url;
  if (!url) {
    throw new Error('the stack runs no simulator');
  }
  const stats = (await request(`${url}/__sim/stats`)).json as SimulatorStats;
  return stats.requests;
}

beforeAll(async () => {
  stack = await startLocalStack(3);
  state = await stack.state();
});

afterAll(async () => {
  // Idempotent: after the last test it only reports that nothing runs.
  await stack?.make('down');
});

describe('make up N=3', () => {
  it('runs three ready instances, Caddy and the simulator, and says so in make status', async () => {
    expect(state.instances.map((instance) => [instance.id, instance.status])).toEqual([
      ['backend-1', 'ready'],
      ['backend-2', 'ready'],
      ['backend-3', 'ready'],
    ]);
    expect(state.simulator).not.toBeNull();
    const status = await stack.make('status');
    for (const instance of state.instances) {
      expect(status.output).toMatch(new RegExp(`${instance.id}\\s+${instance.port}\\s+${instance.pid}\\s+ready`));
    }
  });

  it('spreads 30 requests through Caddy over all three instances', async () => {
    const served = new Set<string>();
    for (let index = 0; index < 30; index += 1) {
      const answer = await chat(`spread ${index} ${randomUUID()}`);
      expect(answer.status).toBe(200);
      served.add(answer.headers.get('x-instance-id') ?? 'none');
    }
    expect([...served].sort()).toEqual(['backend-1', 'backend-2', 'backend-3']);
  });

  it('answers an identical question from the shared cache on the other instances; Groq is called once', async () => {
    const before = await simulatorRequests();
    const question = `Same question everywhere ${randomUUID()}`;
    const answers: { instance: string; body: ChatAnswer }[] = [];
    const othersServed = () =>
      new Set(
        answers
          .slice(1)
          .map((answer) => answer.instance)
          .filter((id) => id !== answers[0]?.instance),
      ).size;
    // Caddy picks among idle instances at random: ask until both other instances have answered.
    while (answers.length < 2 || (othersServed() < 2 && answers.length < 40)) {
      const answer = await chat(question);
      expect(answer.status).toBe(200);
      answers.push({ instance: answer.headers.get('x-instance-id') ?? 'none', body: answer.json as ChatAnswer });
    }
    const [first, ...rest] = answers;
    expect(first?.body.cached).toBe(false);
    expect(rest.every((answer) => answer.body.cached)).toBe(true);
    expect(rest.every((answer) => answer.body.response === first?.body.response)).toBe(true);
    expect(othersServed()).toBe(2);
    expect((await simulatorRequests()) - before).toBe(1);
  });

  it('does not serve /metrics or the operator stats publicly, and answers in the API error shape', async () => {
    const paths = ['/metrics', '/METRICS', '/metrics/', '/api/chat/stats', '/api/chat/stats/', '/API/Chat/Stats/'];
    for (const path of [...paths, '/dashboard', '/dashboard/', '/anything-else']) {
      const answer = await request(`${stack.publicUrl}${path}`);
      expect(answer.status, path).toBe(404);
      expect(answer.json, path).toMatchObject({ error: { code: 'not_found' } });
      expect(answer.headers.get('x-instance-id'), path).toBeNull();
    }
    // Each instance does serve its metrics on its own loopback port, for Prometheus.
    const direct = await request(`http://127.0.0.1:${state.instances[0]?.port}/metrics`);
    expect(direct.status).toBe(200);
  });

  it('adds security headers, compresses, and refuses a body over 1 MB at the proxy', async () => {
    const answer = await chat(`headers ${randomUUID()}`, { 'accept-encoding': 'gzip' });
    expect(answer.status).toBe(200);
    expect(answer.headers.get('x-content-type-options')).toBe('nosniff');
    expect(answer.headers.get('x-frame-options')).toBe('DENY');
    expect(answer.headers.get('content-security-policy')).toContain("default-src 'none'");
    expect(answer.headers.get('server')).toBeNull();
    expect(answer.headers.get('content-encoding')).toBe('gzip');

    const huge = await request(`${stack.publicUrl}/api/chat`, { body: { message: 'x'.repeat(1_100_000) } });
    expect(huge.status).toBe(413);
    expect(huge.json).toMatchObject({ error: { code: 'payload_too_large' } });
    expect(huge.headers.get('x-instance-id')).toBeNull();
  });

  it('make down stops everything it started and leaves no listening port', async () => {
    const pids = [
      state.daemonPid,
      state.caddy.pid,
      state.simulator?.pid,
      ...(await stack.state()).instances.map((instance) => instance.pid),
    ].filter((pid): pid is number => typeof pid === 'number');
    expect(pids).toHaveLength(6);
    expect(pids.every(alive)).toBe(true);

    const result = await stack.make('down');
    expect(result.output).toContain('Stopped.');
    expect(pids.filter(alive)).toEqual([]);
    expect(daemonPid(stack.runDir)).toBeUndefined();
    const listening = [];
    for (const port of [...stack.ports(), ...(state.simulator ? [Number(new URL(state.simulator.url).port)] : [])]) {
      if (await isListening(port)) {
        listening.push(port);
      }
    }
    expect(listening).toEqual([]);
    await expect(stack.state()).rejects.toThrow(/no state/);
  });
});
