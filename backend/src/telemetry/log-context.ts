import { AsyncLocalStorage } from 'node:async_hooks';

/**
 * The request (or queued job's request) a piece of work belongs to, carried
 * through every await, so a module logs with the logger it was built with and
 * its lines still carry the request id (the root logger's mixin reads it).
 */
const requestIds = new AsyncLocalStorage<string>();

/** Runs `work` (and everything it starts) as part of request `requestId`. */
export function runWithRequestId<T>(requestId: string, work: () => T): T {
  return requestIds.run(requestId, work);
}

export function currentRequestId(): string | undefined {
  return requestIds.getStore();
}
