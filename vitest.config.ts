import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

// The e2e files that measure the Groq quota against a simulator's clock: with another
// stack beside them, a starved instance settles its calls late and the test sees the
// CPU, not the governor (upstream-resilience saw five 429s so).
const QUOTA_TIMED = ['backend/test/e2e/upstream-resilience.test.ts', 'backend/test/e2e/upstream-quota-queue.test.ts'];

// Three projects, run in this order (sequence.groupOrder): "fast" (unit + integration on real
// Redis), "e2e" (real processes, Caddy, Docker, Chromium: three files at a time, each on ports,
// run directory and Redis prefix of its own) and "e2e-alone" (one file at a time, nothing beside).
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
          // Four files at a time or more: they mostly wait on Redis, PostgreSQL and timers
          // (three took 42 s on two cores, four 36 s, and four still passed with a core kept busy).
          maxWorkers: Math.max(4, availableParallelism()),
          sequence: { groupOrder: 0 },
        },
      },
      {
        test: {
          name: 'e2e',
          include: ['backend/test/e2e/**/*.test.ts'],
          exclude: QUOTA_TIMED,
          testTimeout: 240_000,
          hookTimeout: 120_000,
          // Three at a time: at two they left the two cores 34 % idle (they wait on health checks,
          // Docker and the browser) and took 130 s; at three, 22 % idle and 104 s. Three still
          // passed with one core kept busy by another process (136 s).
          maxWorkers: 3,
          // One module cache per worker, importing the helpers once, as the fast project does.
          isolate: false,
          sequence: { groupOrder: 1 },
        },
      },
      {
        test: {
          name: 'e2e-alone',
          include: QUOTA_TIMED,
          testTimeout: 240_000,
          hookTimeout: 120_000,
          fileParallelism: false,
          isolate: false,
          sequence: { groupOrder: 2 },
        },
      },
    ],
  },
});
