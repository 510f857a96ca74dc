import Groq from 'groq-sdk';
import OpenAI from 'openai';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type GroqSimulator, startGroqSimulator } from '../../sim/groq-simulator.js';
import { signUp } from '../helpers/accounts.js';
import { type LocalStack, startLocalStack, waitForState } from '../helpers/local-stack.js';
import { STALLED_BODY, STALLED_HEADERS, stallAfter } from '../helpers/slow-client.js';
import { readEvents } from '../helpers/sse.js';

/**
 * Streams and the OpenAI/Groq-compatible gateway through the real stack:
 * Caddy in front of three instances, the upstream a simulator of this test's
 * own, so it can be slowed down and its calls counted.
 */
const MODEL = 'llama-3.1-8b-instant';
let simulator: GroqSimulator;
let stack: LocalStack;

beforeAll(async () => {
  simulator = await startGroqSimulator({ latencyMs: 20, chunkDelayMs: 10, apiKey: 'e2e-stream-key' });
  stack = await startLocalStack(3, {
    GROQ_BASE_URL: simulator.url,
    GROQ_API_KEY: 'e2e-stream-key',
    GROQ_MODEL: MODEL,
    SIGNUPS_PER_IP_PER_HOUR: '1000',
    USER_REQUESTS_PER_MINUTE: '20',
    // Short, so a trickling client is seen cut; the streams below last longer than both.
    CADDY_READ_HEADER: '1s',
    CADDY_READ_BODY: '2s',
    // make up's own: the scale-in below drains the instance it removes.
    SHUTDOWN_DRAIN_MS: '3000',
  });
});

beforeEach(() => simulator.configure({ chunkDelayMs: 10 }));

afterAll(async () => {
  await stack?.make('down');
  await simulator?.close();
});

describe('the gateway through Caddy, with the SDKs unchanged but for their base URL', () => {
  let token: string;

  beforeAll(async () => {
    token = (await signUp(stack.publicUrl)).token;
  });

  it('answers the openai SDK: plain, streamed, from the cache, and lists the model', async () => {
    const openai = new OpenAI({ apiKey: token, baseURL: `${stack.publicUrl}/v1`, maxRetries: 0 });
    const messages = [{ role: 'user' as const, content: 'openai sdk: how do I start my taxes?' }];
    const plain = await openai.chat.completions.create({ model: MODEL, messages });
    expect(plain.choices[0]?.message.content).toMatch(/^\[sim\] /);
    expect(plain.usage?.total_tokens).toBeGreaterThan(0);

    const { data: again, response } = await openai.chat.completions.create({ model: MODEL, messages }).withResponse();
    expect(response.headers.get('x-focus-cache')).toBe('hit');
    expect(again.choices[0]?.message.content).toBe(plain.choices[0]?.message.content);

    const stream = await openai.chat.completions.create({
      model: MODEL,
      messages: [{ role: 'user', content: 'openai sdk: stream it' }],
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = '';
    let chunks = 0;
    let usage: OpenAI.CompletionUsage | undefined;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta?.content ?? '';
      chunks += 1;
      usage = chunk.usage ?? usage;
    }
    expect(chunks).toBeGreaterThan(5);
    expect(text).toMatch(/^\[sim\] /);
    expect(usage?.completion_tokens).toBeGreaterThan(0);

    const models = await openai.models.list();
    expect(models.data.map((model) => model.id)).toEqual([MODEL]);
  });

  it('answers groq-sdk, plain and streamed, under /openai/v1', async () => {
    const groq = new Groq({ apiKey: token, baseURL: stack.publicUrl, maxRetries: 0 });
    const plain = await groq.chat.completions.create({
      model: MODEL,
      messages: [{ role: 'user', content: 'groq sdk: plan my afternoon' }],
    });
    expect(plain.choices[0]?.message.content).toMatch(/^\[sim\] /);
    const stream = await groq.chat.completions.create({
      model: MODEL,
      messages: [{ role: 'user', content: 'groq sdk: stream my afternoon' }],
      stream: true,
    });
    let text = '';
    let usage: unknown;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta?.content ?? '';
      usage = chunk.x_groq?.usage ?? usage;
    }
    expect(text).toMatch(/^\[sim\] /);
    expect(usage).toMatchObject({ completion_tokens: expect.any(Number) });
    expect((await groq.models.list()).data.map((model) => model.id)).toEqual([MODEL]);
  });

  it('raises the SDKs own errors: BadRequestError naming the parameter, NotFoundError, AuthenticationError, RateLimitError with retry-after', async () => {
    const openai = new OpenAI({ apiKey: token, baseURL: `${stack.publicUrl}/v1`, maxRetries: 0 });
    const badParam = await openai.chat.completions
      .create({ model: MODEL, messages: [{ role: 'user', content: 'x' }], logprobs: true })
      .catch((error: unknown) => error);
    expect(badParam).toBeInstanceOf(OpenAI.BadRequestError);
    expect(badParam).toMatchObject({ status: 400, param: 'logprobs' });

    const unknownModel = await openai.chat.completions
      .create({ model: 'gpt-nope', messages: [{ role: 'user', content: 'x' }] })
      .catch((error: unknown) => error);
    expect(unknownModel).toBeInstanceOf(OpenAI.NotFoundError);
    expect(unknownModel).toMatchObject({ code: 'model_not_found' });

    const stranger = new OpenAI({ apiKey: 'not-a-token', baseURL: `${stack.publicUrl}/v1`, maxRetries: 0 });
    await expect(stranger.models.list()).rejects.toBeInstanceOf(OpenAI.AuthenticationError);

    // A fresh user spends their 20 requests a minute, then is refused with their own limit's headers.
    const busy = (await signUp(stack.publicUrl)).token;
    const groq = new Groq({ apiKey: busy, baseURL: stack.publicUrl, maxRetries: 0 });
    let limited: unknown;
    for (let index = 0; index < 25 && !limited; index += 1) {
      limited = await groq.models.list().then(
        () => undefined,
        (error: unknown) => error,
      );
    }
    expect(limited).toBeInstanceOf(Groq.RateLimitError);
    const headers = (limited as InstanceType<typeof Groq.RateLimitError>).headers;
    expect(Number(headers?.get('retry-after'))).toBeGreaterThan(0);
    expect(headers?.get('x-ratelimit-limit-requests')).toBe('20');
    expect(headers?.get('x-ratelimit-remaining-requests')).toBe('0');
  });
});

describe('streams through Caddy', () => {
  const streamChat = (message: string, headers: Record<string, string> = {}) =>
    fetch(`${stack.publicUrl}/api/chat/stream`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify({ message }),
    });

  it('sends the first word long before a slow upstream has finished', async () => {
    simulator.configure({ chunkDelayMs: 150 });
    const started = performance.now();
    const response = await streamChat('A slow answer, please (ttfb)');
    const events = await readEvents(response);
    const first = events.find((event) => event.event === 'delta');
    const done = events.at(-1);
    expect(done?.event).toBe('done');
    const headersMs = Math.round(performance.now() - started - (done?.at ?? 0));
    process.stdout.write(
      `[stream] through Caddy: first delta ${Math.round((first?.at ?? 0) + headersMs)} ms, done ${Math.round((done?.at ?? 0) + headersMs)} ms\n`,
    );
    expect(first?.at).toBeLessThan(1000);
    expect((done?.at ?? 0) - (first?.at ?? 0)).toBeGreaterThan(2000);
  });

  it('lets every open stream finish with done while make scale goes from 3 to 2', async () => {
    // About 6 s a stream: longer than the stopping instance's drain (SHUTDOWN_DRAIN_MS, 3 s) after the scale-in.
    simulator.configure({ chunkDelayMs: 300 });
    const streams = Array.from({ length: 20 }, (_, index) =>
      streamChat(`Keep me open through the scale-in, number ${index}`).then((response) => readEvents(response)),
    );
    // Every stream has started (its first word is out) before the scale-in begins.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const scaled = stack.make('scale', 'N=2');
    const ends = await Promise.all(streams);
    await scaled;
    await waitForState(stack, (state) => state.instances.length === 2, 30_000, 'two instances');
    expect(ends.map((events) => events.at(-1)?.event)).toEqual(Array(20).fill('done'));
  });
});

describe('slow clients through Caddy', () => {
  it('cuts a body that stalls after 6 bytes, and headers that never end, at read_body and read_header', async () => {
    const port = Number(new URL(stack.publicUrl).port);
    const body = await stallAfter(port, STALLED_BODY, 15_000);
    expect(body.closedAfterMs).toBeGreaterThan(1500);
    expect(body.closedAfterMs).toBeLessThan(6000);
    const headers = await stallAfter(port, STALLED_HEADERS, 15_000);
    expect(headers.closedAfterMs).toBeGreaterThan(500);
    expect(headers.closedAfterMs).toBeLessThan(5000);
  });
});
