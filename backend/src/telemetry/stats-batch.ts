/**
 * Samples gathered in memory between two writes to Redis: increments per
 * second and field, and the last time each caller was seen. Adding is a few
 * map updates, so recording costs the request next to nothing; the batch is
 * bounded by what one instance sees in one flush interval.
 */
export interface StatsBatch {
  add(second: number, field: string, by: number): void;
  touch(callerId: string, atMs: number): void;
  readonly empty: boolean;
  /** Hands over what was gathered and starts afresh. */
  take(): { buckets: Map<number, Map<string, number>>; callers: Map<string, number> };
}

export function createStatsBatch(): StatsBatch {
  let buckets = new Map<number, Map<string, number>>();
  let callers = new Map<string, number>();
  return {
    add(second, field, by) {
      let fields = buckets.get(second);
      if (!fields) {
        fields = new Map();
        buckets.set(second, fields);
      }
      fields.set(field, (fields.get(field) ?? 0) + by);
    },
    touch(callerId, atMs) {
      callers.set(callerId, atMs);
    },
    get empty() {
      return buckets.size === 0 && callers.size === 0;
    },
    take() {
      const taken = { buckets, callers };
      buckets = new Map();
      callers = new Map();
      return taken;
    },
  };
}
