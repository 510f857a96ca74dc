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
