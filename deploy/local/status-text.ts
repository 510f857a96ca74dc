import { join, relative } from 'node:path';
import { pm2Home } from './pm2.js';
import type { RunState } from './stack.js';

/** What `make status` (and the end of `make up` / `make scale`) prints. */

/** A path as the user would type it: relative when under the current directory. */
export function shown(path: string): string {
  const relativePath = relative(process.cwd(), path);
  return relativePath === '' ? '.' : relativePath.startsWith('..') ? path : relativePath;
}

export const instancesWord = (count: number) => `${count} instance${count === 1 ? '' : 's'}`;

const pidOf = (pid: number | null | undefined) => String(pid ?? '-');

function postgresLine(postgres: RunState['postgres']): string {
  if (postgres.managed === 'system') {
    return `${postgres.url}   Debian cluster ${postgres.cluster?.version}/${postgres.cluster?.name} (started by make up)`;
  }
  return postgres.managed === 'own'
    ? `${postgres.url}   (started by make up, data in $RUN_DIR/postgres)`
    : postgres.url;
}

export function formatStatus(state: RunState, runDir: string): string {
  const ready = state.instances.filter((instance) => instance.status === 'ready').length;
  return [
    `Stack running: ${ready}/${state.desiredInstances} instances ready behind Caddy at ${state.publicUrl}`,
    '',
    '  id          port   pid      status      restarts',
    ...state.instances.map(
      (instance) =>
        `  ${instance.id.padEnd(11)} ${String(instance.port).padEnd(6)} ${pidOf(instance.pid).padEnd(8)} ${instance.status.padEnd(11)} ${instance.restarts}`,
    ),
    '',
    `  caddy       admin ${state.caddy.adminUrl}   pid ${pidOf(state.caddy.pid)}`,
    `  redis       ${state.redis.url}${state.redis.managed ? `   pid ${pidOf(state.redis.pid)} (started by make up)` : ''}`,
    `  postgres    ${postgresLine(state.postgres)}`,
    `  simulator   ${state.simulator ? `${state.simulator.url}   pid ${pidOf(state.simulator.pid)}` : '- (GROQ_API_KEY or GROQ_BASE_URL set)'}`,
    `  prometheus  ${state.prometheus ? `${state.prometheus.url}   pid ${pidOf(state.prometheus.pid)}` : '-'}`,
    `  logs        ${shown(join(runDir, 'logs'))}/ (make logs)`,
    `  pm2         daemon pid ${pidOf(state.daemonPid)}: PM2_HOME=${shown(pm2Home(runDir))} npx pm2 monit`,
  ].join('\n');
}
