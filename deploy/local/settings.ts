import { resolve } from 'node:path';
import { z } from 'zod';

/** The runner's own settings, named as their variables; the rest of the environment goes to every instance. */

const port = (fallback: number) => z.coerce.number().int().min(1).max(65_535).default(fallback);
const schema = z
  .object({
    RUN_DIR: z.string().default('.run'),
    PUBLIC_PORT: port(8080),
    PUBLIC_BIND: z.string().default('127.0.0.1'),
    PUBLIC_STATS: z.enum(['true', 'false']).default('false'),
    BACKEND_BASE_PORT: port(3001),
    MAX_INSTANCES: z.coerce.number().int().min(1).max(64).default(16),
    CADDY_ADMIN_PORT: port(2019),
    PROMETHEUS_PORT: port(9090),
    PROMETHEUS_ENABLED: z.enum(['auto', 'true', 'false']).default('auto'),
    PROMETHEUS_CONFIG_DIR: z.string().default('prometheus'),
  })
  .refine((s) => s.BACKEND_BASE_PORT + s.MAX_INSTANCES - 1 <= 65_535, {
    path: ['BACKEND_BASE_PORT'],
    message: 'the slot range BACKEND_BASE_PORT + MAX_INSTANCES - 1 must stay below 65536',
  });

export const REPO_ROOT = resolve(import.meta.dirname, '../..');
export type StackSettings = ReturnType<typeof loadStackSettings>;

export function loadStackSettings(env: NodeJS.ProcessEnv = process.env) {
  const present = Object.fromEntries(Object.entries(env).filter(([, value]) => value));
  const parsed = schema.safeParse(present);
  if (!parsed.success) {
    throw new Error(parsed.error.issues.map((issue) => `${String(issue.path[0])}: ${issue.message}`).join('\n'));
  }
  return Object.freeze({
    ...parsed.data,
    RUN_DIR: resolve(parsed.data.RUN_DIR),
    PROMETHEUS_CONFIG_DIR: resolve(REPO_ROOT, parsed.data.PROMETHEUS_CONFIG_DIR),
    /** A port the user set stays; one left to its default may move to a free one. */
    fixed: (name: 'CADDY_ADMIN_PORT' | 'PROMETHEUS_PORT') => name in present,
  });
}

/** Instance n (backend-n) always lives in slot n-1, on this loopback port. */
export const slotPort = (settings: StackSettings, slot: number) => settings.BACKEND_BASE_PORT + slot;
export const instanceId = (slot: number) => `backend-${slot + 1}`;
