import { request, type TestResponse } from './http-client.js';

export interface QueuedBody {
  jobId: string;
  status: 'queued';
  position: number;
  estimatedTime: number;
  message: string;
}

export type StatusBody =
  | {
      status: 'completed';
      result: {
        response: string;
        cached: boolean;
        model: string;
        provider: string;
        usage: { promptTokens: number; completionTokens: number };
      };
    }
  | { status: 'failed'; error: { code: string; message: string } }
  | { status: 'processing'; state: 'waiting' | 'active' | 'delayed'; position: number; estimatedTime: number }
  | { status: 'not_found' };

/** Settings that make the queue's own behaviour visible in tests: no gateway retries, no quota pacing. */
export const QUEUE_TEST_ENV = {
  GROQ_API_KEY: 'test-key',
  UPSTREAM_MAX_ATTEMPTS: '1',
  GROQ_RPM: '0',
  GROQ_TPM: '0',
  GROQ_RPD: '0',
  GROQ_TPD: '0',
  BREAKER_FAILURE_THRESHOLD: '1000',
  MAX_REQUESTS_PER_MINUTE: '1000',
  POLLS_PER_MINUTE: '100000',
  QUEUE_BACKOFF_MS: '50',
} as const;

/** POST /api/chat/queue as the client `ip` (X-Forwarded-For, believed from loopback). */
export function postQueue(
  baseUrl: string,
  body: unknown,
  options: { ip?: string; headers?: Record<string, string> } = {},
): Promise<TestResponse> {
  return request(`${baseUrl}/api/chat/queue`, {
    body,
    headers: { ...(options.ip ? { 'x-forwarded-for': options.ip } : {}), ...options.headers },
  });
}

export function getStatus(
  baseUrl: string,
  jobId: string,
  options: { ip?: string; headers?: Record<string, string> } = {},
): Promise<TestResponse> {
  return request(`${baseUrl}/api/chat/status/${jobId}`, {
    headers: { ...(options.ip ? { 'x-forwarded-for': options.ip } : {}), ...options.headers },
  });
}

/** Polls until the job is completed or failed; returns the final body. */
export async function pollUntilDone(
  baseUrl: string,
  jobId: string,
  options: { ip?: string; headers?: Record<string, string>; timeoutMs?: number; intervalMs?: number } = {},
): Promise<StatusBody> {
  const deadline = Date.now() + (options.timeoutMs ?? 20_000);
  while (Date.now() < deadline) {
    const { json } = await getStatus(baseUrl, jobId, options);
    const body = json as StatusBody;
    if (body.status === 'completed' || body.status === 'failed') {
      return body;
    }
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 50));
  }
  throw new Error(`job ${jobId} not done within ${options.timeoutMs ?? 20_000} ms`);
}
