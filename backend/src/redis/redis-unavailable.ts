/**
 * A Redis call failed (unreachable, timed out, refused): the caller may answer
 * 503 honestly. Anything else that goes wrong around it is a bug and must
 * surface as one (a 500, logged), not pass for an outage.
 */
export class RedisUnavailableError extends Error {
  constructor(override readonly cause: unknown) {
    super(`redis unavailable: ${cause instanceof Error ? cause.message : String(cause)}`);
    this.name = 'RedisUnavailableError';
  }
}

/** Runs one Redis call (or pipeline) and turns its failure into a RedisUnavailableError. */
export async function fromRedis<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    throw error instanceof RedisUnavailableError ? error : new RedisUnavailableError(error);
  }
}
