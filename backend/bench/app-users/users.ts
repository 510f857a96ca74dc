import { randomUUID } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { writeFileSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { type ChatTurn, createFocusChatClient, FocusChatError } from '../../src/client/focus-chat-client.js';

/**
 * One load-generator process of the app-users benchmark: `users` simulated app
 * users, each a small state machine driven by the app's own client helper
 * (createFocusChatClient): sign in (a device account), then ask a question
 * every 30-90 s through stream() (which falls back to the queue) or send()
 * (the queue with its polling), until the run's end; then it waits for the
 * answers still on their way, at most drainMs, and writes one record per
 * question to `outFile`. Loopback only.
 */
export interface WorkerConfig {
  baseUrl: string;
  /** Users of this process: ids firstUser … firstUser + users - 1. */
  users: number;
  firstUser: number;
  /**
   * Sign-ins are spread over [startAt, startAt + rampMs) (epoch ms); questions are asked from
   * askFrom = startAt + rampMs for durationMs; answers awaited drainMs more.
   */
  startAt: number;
  rampMs: number;
  durationMs: number;
  drainMs: number;
  minGapMs: number;
  maxGapMs: number;
  /** Share of questions asked through stream() (the rest through send(): the queue). */
  streamShare: number;
  /** Share of questions from the common list (asked by many users, so the cache answers them). */
  commonShare: number;
  /** Share of the other questions asked with the user's earlier turns as history. */
  historyShare: number;
  outFile: string;
}

export interface QuestionRecord {
  user: number;
  /** ms since askFrom (the end of the sign-ins) when asked. */
  at: number;
  via: 'stream' | 'queue';
  kind: 'common' | 'unique' | 'history';
  outcome: 'answered' | 'failed' | 'unfinished';
  /** Error code of a failure (the backend's, or the client's: network_error, timeout…). */
  code?: string;
  status?: number;
  /** Question to whole answer, ms. */
  ms: number;
  /** Question to the first word shown, ms (streams that streamed). */
  ttftMs?: number;
  /** A stream that could not start and went through the queue. */
  fellBack?: boolean;
  cached?: boolean;
  coalesced?: boolean;
}

export interface WorkerSummary {
  signIns: number;
  /** Sign-ins that failed even after the retries (that user asked nothing). */
  signInFailures: Record<string, number>;
  /** Sign-in attempts that failed and were tried again. */
  signInRetries: number;
  questions: number;
  httpCalls: number;
  httpByStatus: Record<string, number>;
  eventLoopLagP99Ms: number;
  eventLoopLagMaxMs: number;
  cpuSeconds: number;
  peakRssMb: number;
}

const LOOPBACK = /^http:\/\/(127\.0\.0\.1|localhost|\[::1\])(:\d+)?$/;

export const COMMON_QUESTIONS = [
  'I have 20 minutes and three overdue tasks. Where do I start?',
  'I keep opening my phone instead of working. What do I do right now?',
  'How do I start a task I have been avoiding all week?',
  'I feel overwhelmed by my to-do list. What is one thing I can do?',
  'I cannot focus on reading this report. Any quick trick?',
  'How do I get back on track after losing the whole morning?',
  'I have to write an email I dread. How do I begin?',
  'My desk is a mess and I cannot start. What first?',
  'How long should my first focus sprint be?',
  'I forgot what I was doing. How do I pick up again?',
  'I procrastinated all day. How do I salvage the evening?',
  'How do I stop switching between tasks every few minutes?',
];

const TOPICS = ['my thesis', 'the tax form', 'a job application', 'the kitchen', 'my budget', 'a code review'];
const pick = <T>(list: readonly T[]) => list[Math.floor(Math.random() * list.length)] as T;
const between = (low: number, high: number) => low + Math.random() * (high - low);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));

export async function runWorker(config: WorkerConfig): Promise<WorkerSummary> {
  if (!LOOPBACK.test(config.baseUrl)) {
    throw new Error(`the load generator only loads loopback, not ${config.baseUrl}`);
  }
  const lag = monitorEventLoopDelay({ resolution: 10 });
  lag.enable();
  const cpuStart = process.cpuUsage();
  const records: QuestionRecord[] = [];
  const signInFailures: Record<string, number> = {};
  const httpByStatus: Record<string, number> = {};
  let signIns = 0;
  let signInRetries = 0;
  let httpCalls = 0;
  const askFrom = config.startAt + config.rampMs;
  const endAsking = askFrom + config.durationMs;
  const hardStop = new AbortController();
  // Every user's calls listen to it.
  setMaxListeners(0, hardStop.signal);

  async function user(id: number): Promise<void> {
    await sleep(config.startAt + Math.random() * config.rampMs - Date.now());
    // Per user: which calls its current question made (did the stream fall back to the queue?).
    let queuedPosts = 0;
    const countingFetch: typeof fetch = async (input, init) => {
      httpCalls += 1;
      if (String(input).endsWith('/api/chat/queue')) {
        queuedPosts += 1;
      }
      try {
        const response = await fetch(input, init);
        httpByStatus[response.status] = (httpByStatus[response.status] ?? 0) + 1;
        return response;
      } catch (error) {
        httpByStatus.network = (httpByStatus.network ?? 0) + 1;
        throw error;
      }
    };
    const client = createFocusChatClient({ baseUrl: config.baseUrl, fetch: countingFetch });
    // Like the app at its first launch: a sign-in that fails is tried again a little later (3 times).
    for (let attempt = 1; ; attempt += 1) {
      try {
        await client.signIn();
        signIns += 1;
        break;
      } catch (error) {
        const code = error instanceof FocusChatError ? error.code : 'network_error';
        if (attempt >= 3 || Date.now() > endAsking) {
          signInFailures[code] = (signInFailures[code] ?? 0) + 1;
          return;
        }
        signInRetries += 1;
        await sleep(between(2000, 5000));
      }
    }
    const history: ChatTurn[] = [];
    // The first question comes at a random point of a gap, so the run starts in a steady state.
    let next = Math.max(Date.now(), askFrom) + between(0, config.maxGapMs);
    let asked = 0;
    for (;;) {
      if (next >= endAsking) {
        return;
      }
      await sleep(next - Date.now());
      if (hardStop.signal.aborted) {
        return;
      }
      asked += 1;
      const roll = Math.random();
      const kind: QuestionRecord['kind'] =
        roll < config.commonShare
          ? 'common'
          : history.length > 0 && Math.random() < config.historyShare
            ? 'history'
            : 'unique';
      const message =
        kind === 'common'
          ? pick(COMMON_QUESTIONS)
          : `Question ${asked} of user ${id}: how do I get going on ${pick(TOPICS)}? (${randomUUID().slice(0, 8)})`;
      const via: QuestionRecord['via'] = Math.random() < config.streamShare ? 'stream' : 'queue';
      const at = Date.now();
      queuedPosts = 0;
      let first: number | undefined;
      const record: QuestionRecord = { user: id, at: at - askFrom, via, kind, outcome: 'unfinished', ms: 0 };
      records.push(record);
      const options = {
        history: kind === 'history' ? history.slice(-4) : undefined,
        signal: hardStop.signal,
        onDelta: () => {
          first ??= Date.now() - at;
        },
      };
      const ask = (async () => {
        try {
          const reply = via === 'stream' ? await client.stream(message, options) : await client.send(message, options);
          record.outcome = 'answered';
          record.cached = reply.cached;
          record.coalesced = reply.coalesced;
          if (kind !== 'common') {
            history.push({ role: 'user', content: message }, { role: 'assistant', content: reply.response });
          }
        } catch (error) {
          if (hardStop.signal.aborted) {
            record.outcome = 'unfinished';
          } else {
            record.outcome = 'failed';
            record.code = error instanceof FocusChatError ? error.code : 'unexpected';
            record.status = error instanceof FocusChatError ? error.status : undefined;
          }
        }
        record.ms = Date.now() - at;
        if (via === 'stream') {
          record.fellBack = queuedPosts > 0;
          if (!record.fellBack && first !== undefined) {
            record.ttftMs = first;
          }
        }
      })();
      // The app waits for the answer before the user asks again.
      await ask;
      next = Date.now() + between(config.minGapMs, config.maxGapMs);
    }
  }

  const users = Array.from({ length: config.users }, (_, index) => user(config.firstUser + index));
  const drained = Promise.all(users);
  const deadline = endAsking + config.drainMs - Date.now();
  await Promise.race([drained, sleep(deadline)]);
  hardStop.abort();
  await drained;
  lag.disable();
  writeFileSync(config.outFile, `${records.map((record) => JSON.stringify(record)).join('\n')}\n`);
  const cpu = process.cpuUsage(cpuStart);
  return {
    signIns,
    signInFailures,
    signInRetries,
    questions: records.length,
    httpCalls,
    httpByStatus,
    eventLoopLagP99Ms: Math.round(lag.percentile(99) / 1e5) / 10,
    eventLoopLagMaxMs: Math.round(lag.max / 1e5) / 10,
    cpuSeconds: Math.round(((cpu.user + cpu.system) / 1e6) * 10) / 10,
    peakRssMb: Math.round(process.resourceUsage().maxRSS / 1024),
  };
}

// As a process of its own: the config as argv[2] (JSON), the summary as the last line of stdout.
if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop() ?? '\0')) {
  const config = JSON.parse(process.argv[2] ?? '{}') as WorkerConfig;
  runWorker(config)
    .then((summary) => {
      process.stdout.write(`${JSON.stringify(summary)}\n`);
      process.exit(0);
    })
    .catch((error: unknown) => {
      process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
      process.exit(1);
    });
}
