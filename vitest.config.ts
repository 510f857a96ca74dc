import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

// Two projects: "fast" (unit + integration on real Redis, files in parallel)
// and "e2e" (real processes and Caddy, one file at a time: they share CPU and ports).
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'fast',
          include: ['backend/test/unit/**/*.test.ts', 'backend/test/integration/**/*.test.ts'],
          testTimeout: 30_000,
          hookTimeout: 30_000,
          // At least two files at a time: vitest's default (a worker per core but one) ran them one by
          // one on 2 cores, which they use about half of (they mostly wait on Redis, PostgreSQL, timers).
          maxWorkers: Math.max(2, availableParallelism() - 1),
        },
      },
      {
        test: {
          name: 'e2e',
          include: ['backend/test/e2e/**/*.test.ts'],
          testTimeout: 240_000,
          hookTimeout: 120_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
