import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { isAlive } from '../../../deploy/local/run-state.js';
import { superviseProcess } from '../../../deploy/local/supervised-process.js';

/** The runner's process supervision (deploy/local), on real child processes. */

interface LogLine {
  msg: string;
  restartInMs?: number;
  pid?: number;
}

function capture() {
  const lines: LogLine[] = [];
  const logger = pino(
    { level: 'info' },
    {
      write(chunk: string) {
        lines.push(JSON.parse(chunk) as LogLine);
      },
    },
  );
  return { logger, lines };
}

function supervise(script: string, logger: pino.Logger, logFile: string, stopTimeoutMs = 5000) {
  return superviseProcess({
    name: 'child',
    command: process.execPath,
    args: ['-e', script],
    env: { PATH: process.env.PATH },
    cwd: tmpdir(),
    logFile,
    logger,
    restart: true,
    stopTimeoutMs,
    onChange: () => undefined,
  });
}

const logFile = () => join(mkdtempSync(join(tmpdir(), 'supervised-')), 'child.log');

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) {
      throw new Error('timed out');
    }
    await sleep(20);
  }
}

describe('a supervised process', () => {
  it('in a crash loop is respawned with a doubling delay, and stop() cancels the pending respawn', async () => {
    const { logger, lines } = capture();
    const child = supervise('process.exit(3)', logger, logFile());
    const deaths = () => lines.filter((line) => line.msg === 'died unexpectedly; respawning');
    await until(() => deaths().length === 3, 15_000);

    expect(deaths().map((line) => line.restartInMs)).toEqual([500, 1000, 2000]);
    expect(child.restarts).toBe(2);
    expect(child.status).toBe('restarting');

    await child.stop();
    expect(child.status).toBe('stopped');
    const started = lines.filter((line) => line.msg === 'started').length;
    // Past the pending 2 s respawn: nothing was started again.
    await sleep(2500);
    expect(lines.filter((line) => line.msg === 'started').length).toBe(started);
    expect(child.pid).toBeNull();
  });

  it('that ignores SIGTERM is killed once stopTimeoutMs has passed', async () => {
    const { logger, lines } = capture();
    const file = logFile();
    const script = "process.on('SIGTERM', () => {}); console.log('deaf'); setInterval(() => {}, 1000)";
    const child = supervise(script, logger, file, 300);
    // Its SIGTERM handler is in place once it has said so in its log.
    await until(() => readFileSync(file, 'utf8').includes('deaf'), 10_000);
    const pid = child.pid as number;

    await child.stop();
    expect(lines.some((line) => line.msg === 'did not stop in time; SIGKILL')).toBe(true);
    expect(isAlive(pid)).toBe(false);
    expect(child.status).toBe('stopped');
  });
});
