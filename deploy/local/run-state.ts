import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';

/**
 * What the supervisor tells the CLI (and tests) about the running stack:
 * $RUN_DIR/state.json, rewritten atomically on every change. The CLI asks the
 * supervisor for a new instance count through $RUN_DIR/desired-instances and a
 * SIGHUP.
 */

const processSchema = z.object({ pid: z.number().int().nullable() });

const instanceSchema = z.object({
  slot: z.number().int(),
  id: z.string(),
  port: z.number().int(),
  pid: z.number().int().nullable(),
  /** starting: spawned, /readyz not yet 200 · ready · draining: SIGTERM sent · restarting: died, waiting to respawn. */
  status: z.enum(['starting', 'ready', 'draining', 'restarting']),
  restarts: z.number().int(),
});

export const runStateSchema = z.object({
  supervisorPid: z.number().int(),
  phase: z.enum(['starting', 'running', 'stopping', 'stopped', 'failed']),
  error: z.string().nullable(),
  updatedAt: z.string(),
  publicUrl: z.string(),
  desiredInstances: z.number().int(),
  maxInstances: z.number().int(),
  redis: processSchema.extend({ url: z.string(), managed: z.boolean() }),
  /** managed: none (it already ran), system (Debian's cluster, started by make up), own ($RUN_DIR/postgres). */
  postgres: processSchema
    .extend({
      url: z.string(),
      managed: z.enum(['none', 'system', 'own']),
      cluster: z.object({ version: z.string(), name: z.string() }).nullable(),
    })
    .nullable()
    // A state written before the stack had PostgreSQL.
    .default(null),
  simulator: processSchema.extend({ url: z.string() }).nullable(),
  caddy: processSchema.extend({ adminUrl: z.string() }).nullable(),
  prometheus: processSchema.extend({ url: z.string() }).nullable(),
  instances: z.array(instanceSchema),
});

export type RunState = z.infer<typeof runStateSchema>;
export type InstanceState = z.infer<typeof instanceSchema>;

export interface RunPaths {
  readonly dir: string;
  readonly state: string;
  readonly desired: string;
  readonly logs: string;
  readonly prometheus: string;
  log(name: string): string;
}

export function runPaths(runDir: string): RunPaths {
  const logs = join(runDir, 'logs');
  return {
    dir: runDir,
    state: join(runDir, 'state.json'),
    desired: join(runDir, 'desired-instances'),
    logs,
    prometheus: join(runDir, 'prometheus'),
    log: (name) => join(logs, `${name}.log`),
  };
}

/** Write-then-rename, so a reader never sees half a file. */
export function writeFileAtomic(path: string, content: string): void {
  const temporary = `${path}.${process.pid}.tmp`;
  writeFileSync(temporary, content);
  renameSync(temporary, path);
}

export function readRunState(paths: RunPaths): RunState | undefined {
  let text: string;
  try {
    text = readFileSync(paths.state, 'utf8');
  } catch {
    return undefined;
  }
  return runStateSchema.parse(JSON.parse(text));
}

export function writeRunState(paths: RunPaths, state: RunState): void {
  writeFileAtomic(paths.state, `${JSON.stringify(state, null, 2)}\n`);
}

export function removeRunState(paths: RunPaths): void {
  rmSync(paths.state, { force: true });
  rmSync(paths.desired, { force: true });
}

export function readDesiredInstances(paths: RunPaths): number | undefined {
  try {
    const value = Number(readFileSync(paths.desired, 'utf8').trim());
    return Number.isInteger(value) && value >= 0 ? value : undefined;
  } catch {
    return undefined;
  }
}

export function writeDesiredInstances(paths: RunPaths, count: number): void {
  mkdirSync(paths.dir, { recursive: true });
  writeFileAtomic(paths.desired, `${count}\n`);
}

/** True when a process with this pid exists (a zombie counts until reaped). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
