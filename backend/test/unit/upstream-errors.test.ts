import {
  APIConnectionError,
  APIConnectionTimeoutError,
  APIError,
  APIUserAbortError,
  InternalServerError,
  RateLimitError,
} from 'groq-sdk';
import { describe, expect, it } from 'vitest';
import { AppError, upstreamToAppError } from '../../src/errors.js';
import { toUpstreamError } from '../../src/llm/groq-provider.js';
import { parseDurationMs, UpstreamError, type UpstreamErrorKind } from '../../src/llm/upstream-error.js';
import { parseRetryAfterMs } from '../../src/shared/retry-after.js';

/** What groq-sdk throws for an HTTP error answer, built the way the SDK builds it. */
const sdkError = (status: number, headers: Record<string, string> = {}) =>
  APIError.generate(status, { error: { message: `status ${status}` } }, undefined, new Headers(headers));

describe('toUpstreamError (groq-sdk errors)', () => {
  it.each<[string, unknown, UpstreamErrorKind, number | undefined]>([
    ['a connection timeout', new APIConnectionTimeoutError(), 'timeout', undefined],
    ['an abort', new APIUserAbortError(), 'timeout', undefined],
    ['a refused connection', new APIConnectionError({ cause: new Error('ECONNREFUSED') }), 'unavailable', undefined],
    ['429', sdkError(429), 'rate_limited', 429],
    ['401 (bad key)', sdkError(401), 'misconfigured', 401],
    ['403', sdkError(403), 'misconfigured', 403],
    ['404 (unknown model)', sdkError(404), 'misconfigured', 404],
    ['400', sdkError(400), 'rejected', 400],
    ['413', sdkError(413), 'rejected', 413],
    ['422', sdkError(422), 'rejected', 422],
    ['408', sdkError(408), 'unavailable', 408],
    ['409', sdkError(409), 'unavailable', 409],
    ['500', sdkError(500), 'unavailable', 500],
    ['503', sdkError(503), 'unavailable', 503],
    ['an unknown throw', new TypeError('boom'), 'unavailable', undefined],
  ])('maps %s', (_what, error, kind, status) => {
    const mapped = toUpstreamError(error, 'groq');
    expect(mapped).toBeInstanceOf(UpstreamError);
    expect(mapped.kind).toBe(kind);
    expect(mapped.status).toBe(status);
    expect(mapped.provider).toBe('groq');
  });

  it('builds the SDK subclasses the mapping relies on', () => {
    expect(sdkError(429)).toBeInstanceOf(RateLimitError);
    expect(sdkError(503)).toBeInstanceOf(InternalServerError);
  });

  it('keeps retry-after of a 429 and of a 503', () => {
    expect(toUpstreamError(sdkError(429, { 'retry-after': '7' }), 'groq').retryAfterMs).toBe(7000);
    expect(toUpstreamError(sdkError(503, { 'retry-after-ms': '250' }), 'groq').retryAfterMs).toBe(250);
    expect(toUpstreamError(sdkError(429), 'groq').retryAfterMs).toBeUndefined();
  });

  it('passes an UpstreamError through unchanged', () => {
    const original = new UpstreamError('rejected', 'other', 'x', 400);
    expect(toUpstreamError(original, 'groq')).toBe(original);
  });

  it('never copies the provider body into the message', () => {
    const error = APIError.generate(
      401,
      { error: { message: 'Invalid API Key gsk_secret' } },
      undefined,
      new Headers(),
    );
    expect(toUpstreamError(error, 'groq').message).not.toContain('gsk_secret');
  });

  it('retryable: transient kinds only', () => {
    expect(new UpstreamError('timeout', 'groq', '').retryable).toBe(true);
    expect(new UpstreamError('unavailable', 'groq', '').retryable).toBe(true);
    expect(new UpstreamError('rate_limited', 'groq', '').retryable).toBe(true);
    expect(new UpstreamError('rejected', 'groq', '').retryable).toBe(false);
    expect(new UpstreamError('misconfigured', 'groq', '').retryable).toBe(false);
  });
});

describe('upstreamToAppError', () => {
  it.each<[string, UpstreamError, number, string]>([
    ['a timeout', new UpstreamError('timeout', 'groq', 'x'), 504, 'upstream_timeout'],
    ['a rate limit', new UpstreamError('rate_limited', 'groq', 'x', 429, 12_000), 503, 'upstream_rate_limited'],
    ['an unreachable upstream', new UpstreamError('unavailable', 'groq', 'x'), 503, 'upstream_unavailable'],
    ['an upstream 500', new UpstreamError('unavailable', 'groq', 'x', 500), 502, 'upstream_error'],
    ['a rejected request', new UpstreamError('rejected', 'groq', 'x', 400), 502, 'upstream_rejected'],
    ['a bad key', new UpstreamError('misconfigured', 'groq', 'x', 401), 502, 'upstream_misconfigured'],
  ])('renders %s', (_what, error, status, code) => {
    const appError = upstreamToAppError(error);
    expect(appError).toBeInstanceOf(AppError);
    expect(appError.status).toBe(status);
    expect(appError.code).toBe(code);
    // Provider detail (status, raw message) stays in our logs, not in the client's answer.
    expect(appError.message).not.toMatch(/groq|401|500/i);
  });

  it('tells a rate-limited client when to come back, rounded up to whole seconds', () => {
    expect(upstreamToAppError(new UpstreamError('rate_limited', 'groq', 'x', 429, 12_300)).headers).toEqual({
      'Retry-After': '13',
    });
    expect(upstreamToAppError(new UpstreamError('rate_limited', 'groq', 'x', 429, 0)).headers).toEqual({
      'Retry-After': '1',
    });
    expect(upstreamToAppError(new UpstreamError('rate_limited', 'groq', 'x', 429)).headers).toEqual({
      'Retry-After': '5',
    });
  });

  it('adds Retry-After to an unreachable upstream, not to a timeout', () => {
    expect(upstreamToAppError(new UpstreamError('unavailable', 'groq', 'x')).headers['Retry-After']).toBe('5');
    expect(upstreamToAppError(new UpstreamError('timeout', 'groq', 'x')).headers['Retry-After']).toBeUndefined();
  });
});

describe('parseDurationMs (Groq x-ratelimit-reset-*)', () => {
  it.each<[string | null | undefined, number | undefined]>([
    ['7.66s', 7660],
    ['2m59.56s', 179_560],
    ['120ms', 120],
    ['1h2m3s', 3_723_000],
    ['0s', 0],
    [' 5s ', 5000],
    ['1m', 60_000],
    ['', undefined],
    [null, undefined],
    [undefined, undefined],
    ['soon', undefined],
    ['5', undefined],
    ['5s later', undefined],
    ['-5s', undefined],
    ['5 s', undefined],
  ])('%j → %j', (value, expected) => {
    expect(parseDurationMs(value)).toBe(expected);
  });
});

describe('parseRetryAfterMs', () => {
  const now = Date.parse('2025-01-01T00:00:00Z');

  it.each<[Record<string, string>, number | undefined]>([
    [{ 'retry-after': '3' }, 3000],
    [{ 'retry-after': '0.5' }, 500],
    [{ 'retry-after-ms': '1500', 'retry-after': '9' }, 1500],
    [{ 'retry-after-ms': 'junk', 'retry-after': '9' }, 9000],
    [{ 'retry-after': 'Wed, 01 Jan 2025 00:00:30 GMT' }, 30_000],
    [{ 'retry-after': 'Tue, 31 Dec 2024 23:59:00 GMT' }, 0],
    [{ 'retry-after': 'whenever' }, undefined],
    [{}, undefined],
  ])('%j → %j', (headers, expected) => {
    expect(parseRetryAfterMs(new Headers(headers), now)).toBe(expected);
  });

  it('is undefined without headers', () => {
    expect(parseRetryAfterMs(undefined)).toBeUndefined();
  });
});
