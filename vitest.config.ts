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
          // Files share a worker's module cache instead of importing the app afresh each (no test
          // mocks modules or edits process.env, and the code keeps no module-level state): the
          // project's CPU time fell from about 155 s to 50 s, most of it vite's transform and import.
          isolate: false,
          // Several files at a time: they mostly wait on Redis, PostgreSQL and timers.
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
          // One worker for every file, importing the helpers once, as the fast project does.
          isolate: false,
        },
      },
    ],
  },
});
