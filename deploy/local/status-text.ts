import { relative } from 'node:path';
import type { RunState } from './run-state.js';

/** What `make status` (and the end of `make up` / `make scale`) prints. */

/** A path as the user would type it: relative when under the current directory. */
export function shown(path: string): string {
  const relativePath = relative(process.cwd(), path);
  return relativePath === '' ? '.' : relativePath.startsWith('..') ? path : relativePath;
}

export const instancesWord = (count: number) => `${count} instance${count === 1 ? '' : 's'}`;

const pidOf = (pid: number | null | undefined) => String(pid ?? '-');

function postgresLine(state: RunState): string {
  const postgres = state.postgres;
  if (!postgres) {
    return '-';
  }
  if (postgres.managed === 'system') {
    return `${postgres.url}   Debian cluster ${postgres.cluster?.version}/${postgres.cluster?.name} (started by make up)`;
  }
  if (postgres.managed === 'own') {
    return `${postgres.url}   pid ${pidOf(postgres.pid)} (started by make up, data in $RUN_DIR/postgres)`;
  }
  return postgres.url;
}

export function formatStatus(state: RunState, logsDir: string): string {
  const ready = state.instances.filter((instance) => instance.status === 'ready').length;
  const lines = [
    `Stack ${state.phase}: ${ready}/${state.desiredInstances} instances ready behind Caddy at ${state.publicUrl}`,
    '',
    '  id          port   pid      status      restarts',
    ...state.instances.map(
      (instance) =>
        `  ${instance.id.padEnd(11)} ${String(instance.port).padEnd(6)} ${pidOf(instance.pid).padEnd(8)} ${instance.status.padEnd(11)} ${instance.restarts}`,
    ),
    '',
    `  caddy       admin ${state.caddy?.adminUrl ?? '-'}   pid ${pidOf(state.caddy?.pid)}`,
    `  redis       ${state.redis.url}${state.redis.managed ? `   pid ${pidOf(state.redis.pid)} (started by make up)` : ''}`,
    `  postgres    ${postgresLine(state)}`,
    `  simulator   ${state.simulator ? `${state.simulator.url}   pid ${pidOf(state.simulator.pid)}` : '- (GROQ_API_KEY or GROQ_BASE_URL set)'}`,
    `  prometheus  ${state.prometheus ? `${state.prometheus.url}   pid ${pidOf(state.prometheus.pid)}` : '-'}`,
    `  logs        ${shown(logsDir)}/`,
  ];
  return lines.join('\n');
}
