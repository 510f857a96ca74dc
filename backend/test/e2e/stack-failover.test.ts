import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isListening, pollUntil } from '../../../deploy/local/ports.js';
import { alive, orphans } from '../../../deploy/local/stack.js';
import { sleep } from '../../src/shared/sleep.js';
import { type LocalStack, startLocalStack, waitForState } from '../helpers/local-stack.js';
import { connectionsTo } from '../helpers/proxy-connections.js';
import { instancesOf, type LoadRecord, startSteadyLoad } from '../helpers/steady-load.js';

/**
 * `kill -9` of one instance while a steady load flows through Caddy. Requests
 * in flight on it when it dies are lost: Caddy 2.6 cannot replay a request
 * body it has already sent. Every request started once it is gone must
 * succeed, and PM2 must replace it.
 */

let stack: LocalStack;

beforeAll(async () => {
  stack = await startLocalStack(3);
});

afterAll(async () => {
  await stack?.make('down');
});

const summarise = (records: readonly LoadRecord[]) =>
  records
    .map((record) => `${record.status} ${record.error ?? ''} ${record.instance ?? 'caddy'} +${record.startedAt}`)
    .join(', ');

describe('kill -9 of one instance under steady load', () => {
  it('loses at most the requests in flight on it; every later request succeeds; the runner replaces it', async () => {
    // Distinct messages: every request goes to the simulator (40 ms), so some are in flight on the victim;
    // flat out, not paced: paced, the kill sometimes met none in flight.
    const load = startSteadyLoad({
      url: stack.publicUrl,
      concurrency: 6,
      everyMs: 0,
      message: (n) => `failover ${n} ${randomUUID()}`,
    });
    await sleep(2000);

    const victim = (await stack.state()).instances.find((instance) => instance.id === 'backend-2');
    expect(victim?.pid).toBeTypeOf('number');
    const victimPid = victim?.pid as number;
    const upstream = `127.0.0.1:${victim?.port}`;
    const caddyHeld = await connectionsTo(upstream, { processName: 'caddy' });
    const killedAt = Date.now();
    process.kill(victimPid, 'SIGKILL');
    // Gone: exited and reaped by PM2, and Caddy has closed every connection it had to it
    // (a request Caddy sends on one of those before it reads the close is as lost as one in flight).
    expect(await pollUntil(async () => !alive(victimPid), 5000, 5)).toBe(true);
    expect(
      await pollUntil(
        async () => [...(await connectionsTo(upstream, { processName: 'caddy' }))].every((end) => !caddyHeld.has(end)),
        5000,
        5,
      ),
    ).toBe(true);
    const goneAt = Date.now();

    const replaced = await waitForState(
      stack,
      (state) =>
        state.instances.some(
          (instance) =>
            instance.id === 'backend-2' &&
            instance.status === 'ready' &&
            instance.pid !== victimPid &&
            instance.restarts === 1,
        ),
      60_000,
      'PM2 to replace backend-2',
    );
    const replacedAt = Date.now();
    // Caddy's next health check puts the new process in rotation.
    await sleep(3000);
    const records = await load.stop();

    const afterGone = records.filter((record) => record.startedAt >= goneAt);
    const failedAfterGone = afterGone.filter((record) => record.status !== 200);
    const lost = records.filter((record) => record.status !== 200);
    const inFlightAtKill = records.filter((record) => record.startedAt < killedAt && record.endedAt >= killedAt);
    process.stdout.write(
      `[failover] ${records.length} requests; ${inFlightAtKill.length} in flight at the kill, ${lost.length} lost (${summarise(lost)}); ` +
        `${afterGone.length} started once it was gone (${goneAt - killedAt} ms after the kill; Caddy held ${caddyHeld.size} connections to it), ${failedAfterGone.length} failed\n`,
    );

    expect(failedAfterGone, summarise(failedAfterGone)).toEqual([]);
    expect(lost.every((record) => record.startedAt < goneAt)).toBe(true);
    expect(lost.length).toBeLessThanOrEqual(inFlightAtKill.length);
    expect(afterGone.length).toBeGreaterThan(50);

    const newPid = replaced.instances.find((instance) => instance.id === 'backend-2')?.pid;
    expect(newPid).not.toBe(victimPid);
    expect(readFileSync(join(stack.runDir, 'pm2/pm2.log'), 'utf8')).toMatch(
      /App \[backend-2:\d+\] will restart in \d+ms/,
    );
    const afterReplacement = records.filter((record) => record.startedAt >= replacedAt + 1500);
    expect(instancesOf(afterReplacement)).toEqual(['backend-1', 'backend-2', 'backend-3']);
  });

  it('make down also ends what a PM2 daemon killed with -9 left behind', async () => {
    const state = await stack.state();
    const children = orphans(stack.runDir);
    expect(children.length).toBeGreaterThanOrEqual(5);
    process.kill(state.daemonPid as number, 'SIGKILL');
    expect(await pollUntil(async () => !alive(state.daemonPid as number), 5000, 20)).toBe(true);
    // The stack goes on serving without its daemon…
    const answer = await fetch(`${stack.publicUrl}/healthz`);
    expect(answer.status).toBe(200);
    expect((await stack.make('status')).output).toContain(
      `Not running: the PM2 daemon is gone, but ${children.length} process(es) of the stack still run`,
    );

    // …until make down ends every process of it, and nothing else.
    const result = await stack.make('down');
    expect(result.output).toMatch(/Ended \d+ process\(es\) the PM2 daemon left behind/);
    expect(children.filter(alive)).toEqual([]);
    const listening = [];
    for (const port of stack.ports()) {
      if (await isListening(port)) {
        listening.push(port);
      }
    }
    expect(listening).toEqual([]);
  });
});
