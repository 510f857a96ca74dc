import { resolve } from 'node:path';
import { z } from 'zod';

/**
 * Settings of the local stack itself (ports, run directory), read from the
 * environment by the CLI. Everything else in the environment is the
 * backends' business: it is passed to every instance as is.
 */

const port = (fallback: number) => z.coerce.number().int().min(1).max(65_535).default(fallback);

const settingsSchema = z.object({
  RUN_DIR: z.string().min(1).default('.run'),
  PUBLIC_PORT: port(8080),
  PUBLIC_BIND: z.string().min(1).default('127.0.0.1'),
  PUBLIC_STATS: z.enum(['true', 'false']).default('false'),
  BACKEND_BASE_PORT: port(3001),
  MAX_INSTANCES: z.coerce.number().int().min(1).max(64).default(16),
  CADDY_ADMIN_PORT: port(2019),
  PROMETHEUS_PORT: port(9090),
  PROMETHEUS_ENABLED: z.enum(['auto', 'true', 'false']).default('auto'),
  PROMETHEUS_CONFIG_DIR: z.string().min(1).default('prometheus'),
});

export interface StackSettings {
  readonly runDir: string;
  readonly publicPort: number;
  readonly publicBind: string;
  readonly publicStats: boolean;
  readonly backendBasePort: number;
  readonly maxInstances: number;
  readonly caddyAdminPort: number;
  /** False when CADDY_ADMIN_PORT was left to its default, which may then move to a free port. */
  readonly caddyAdminPortFixed: boolean;
  readonly prometheusPort: number;
  readonly prometheusPortFixed: boolean;
  readonly prometheus: 'auto' | 'true' | 'false';
  readonly prometheusConfigDir: string;
  /** The repository root: the Caddyfile, the backend and the simulator are found from here. */
  readonly repoRoot: string;
}

export const REPO_ROOT = resolve(import.meta.dirname, '../..');

export const DEFAULT_INSTANCES = 3;

export function loadStackSettings(env: NodeJS.ProcessEnv = process.env): StackSettings {
  const present = Object.fromEntries(Object.entries(env).filter(([, value]) => value !== undefined && value !== ''));
  const parsed = settingsSchema.safeParse(present);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `${String(issue.path[0])}: ${issue.message}`);
    throw new Error(problems.join('\n'));
  }
  const raw = parsed.data;
  if (raw.BACKEND_BASE_PORT + raw.MAX_INSTANCES - 1 > 65_535) {
    throw new Error('BACKEND_BASE_PORT: the slot range BACKEND_BASE_PORT + MAX_INSTANCES - 1 must stay below 65536');
  }
  return Object.freeze({
    runDir: resolve(raw.RUN_DIR),
    publicPort: raw.PUBLIC_PORT,
    publicBind: raw.PUBLIC_BIND,
    publicStats: raw.PUBLIC_STATS === 'true',
    backendBasePort: raw.BACKEND_BASE_PORT,
    maxInstances: raw.MAX_INSTANCES,
    caddyAdminPort: raw.CADDY_ADMIN_PORT,
    caddyAdminPortFixed: present.CADDY_ADMIN_PORT !== undefined,
    prometheusPort: raw.PROMETHEUS_PORT,
    prometheusPortFixed: present.PROMETHEUS_PORT !== undefined,
    prometheus: raw.PROMETHEUS_ENABLED,
    prometheusConfigDir: resolve(REPO_ROOT, raw.PROMETHEUS_CONFIG_DIR),
    repoRoot: REPO_ROOT,
  });
}

/** The loopback port of instance slot `slot` (0-based). */
export function slotPort(settings: StackSettings, slot: number): number {
  return settings.backendBasePort + slot;
}

/** "127.0.0.1:3001 127.0.0.1:3002 …": every slot, as the Caddyfile's BACKEND_UPSTREAMS. */
export function upstreamList(settings: StackSettings): string {
  return Array.from({ length: settings.maxInstances }, (_, slot) => `127.0.0.1:${slotPort(settings, slot)}`).join(' ');
}
