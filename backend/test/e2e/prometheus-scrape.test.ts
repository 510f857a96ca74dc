import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { pollUntil } from '../../../deploy/local/ports.js';
import dashboard from '../../../grafana/dashboards/focus-backend.json' with { type: 'json' };
import { httpFrom } from '../helpers/http-from.js';
import { type LocalStack, startLocalStack } from '../helpers/local-stack.js';

/**
 * `make up N=3` with Prometheus (the Debian package) under a short load
 * through Caddy: the runner's file_sd targets are scraped, every dashboard
 * expression and every alert rule evaluates through Prometheus' HTTP API, and
 * the panels a person looks at first show data.
 */

const CALLERS = Array.from({ length: 20 }, (_, index) => `127.0.0.${10 + index}`);
const QUESTIONS = [
  'I cannot start my essay',
  'How do I stop checking my phone?',
  'Break down cleaning my room',
  'I keep forgetting my meds',
  'Plan my next 25 minutes',
];
/** Panels that must have series once traffic flowed (titles in the dashboard JSON). */
const MUST_HAVE_DATA = [
  'Active users',
  'Requests / min',
  'Cache hit rate',
  'p95 latency',
  'Requests / s per instance',
  'Latency p50 / p95 / p99',
  'Cache lookups / s by result',
  'Instances up',
  'Memory (RSS) per instance',
  'Event-loop lag p99 per instance',
  'Proxy: healthy upstreams',
];

interface DashboardPanel {
  title: string;
  type: string;
  targets?: { refId: string; expr: string }[];
}
interface Series {
  metric: Record<string, string>;
  values?: [number, string][];
  value?: [number, string];
}
interface ApiAnswer<T> {
  status: 'success' | 'error';
  data: T;
  error?: string;
}
interface LoadedRule {
  name: string;
  health: string;
  lastError?: string;
}

const panels = (dashboard.panels as DashboardPanel[]).filter((panel) => panel.type !== 'row');
/** Grafana fills $__rate_interval in; for the local 5 s scrape interval it would choose one minute. */
const toPromQL = (expr: string) => expr.replaceAll('$__rate_interval', '1m');

async function waitUntil(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  if (!(await pollUntil(() => check().catch(() => false), timeoutMs))) {
    throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
  }
}

const hasPrometheus = await promisify(execFile)('prometheus', ['--version']).then(
  () => true,
  () => false,
);
if (!hasPrometheus) {
  process.stderr.write(
    'prometheus-scrape.test.ts: SKIPPED, prometheus is not installed (apt-get install prometheus)\n',
  );
}

describe.skipIf(!hasPrometheus)('Prometheus beside the local stack (make up)', () => {
  let stack: LocalStack;
  let statusOutput = '';
  let prometheusUrl = '';
  let loading = true;
  let load: Promise<void> = Promise.resolve();
  let sent = 0;

  async function api<T>(path: string, params: Record<string, string> = {}): Promise<ApiAnswer<T>> {
    const response = await fetch(`${prometheusUrl}${path}?${new URLSearchParams(params).toString()}`);
    return (await response.json()) as ApiAnswer<T>;
  }

  async function instant(query: string): Promise<Series[]> {
    const answer = await api<{ result: Series[] }>('/api/v1/query', { query });
    if (answer.status !== 'success') {
      throw new Error(`${query}: ${answer.error}`);
    }
    return answer.data.result;
  }

  async function upTargets(job: string): Promise<string[]> {
    const answer = await api<{ activeTargets: { labels: { job: string; instance: string }; health: string }[] }>(
      '/api/v1/targets',
      { state: 'active' },
    );
    return answer.data.activeTargets
      .filter((target) => target.labels.job === job && target.health === 'up')
      .map((target) => target.labels.instance)
      .sort();
  }

  async function drive() {
    while (loading) {
      const caller = CALLERS[sent % CALLERS.length] as string;
      const body = sent % 10 === 9 ? { message: '' } : { message: QUESTIONS[sent % QUESTIONS.length] };
      sent += 1;
      await httpFrom(`${stack.publicUrl}/api/chat`, { localAddress: caller, body }).catch(() => undefined);
      await new Promise((resolve) => setTimeout(resolve, 15));
    }
  }

  beforeAll(async () => {
    stack = await startLocalStack(3, { PROMETHEUS_ENABLED: 'true' });
    statusOutput = (await stack.make('status')).output;
    prometheusUrl = (await stack.state()).prometheus?.url ?? '';
    load = drive();
  });

  afterAll(async () => {
    loading = false;
    await load;
    await stack?.make('down');
  });

  it('starts Prometheus, and make status says where', () => {
    expect(prometheusUrl).toBe(`http://127.0.0.1:${stack.env.PROMETHEUS_PORT}`);
    expect(statusOutput).toContain(prometheusUrl);
  });

  it('scrapes every instance the runner wrote into targets/backends.json, and Caddy', async () => {
    await waitUntil(
      async () => (await upTargets('focus-backend')).join() === 'backend-1,backend-2,backend-3',
      30_000,
      'three backends scraped',
    );
    await waitUntil(async () => (await upTargets('caddy')).join() === 'caddy', 30_000, 'caddy scraped');
  });

  it('sees the cluster-wide active users, the same on every instance and as /dashboard says', async () => {
    // Our 20 callers, plus whoever else spoke through Caddy (the runner's own readiness probe).
    let seen = '';
    await waitUntil(
      async () => {
        const [max] = await instant('max(focus_active_users)');
        const [min] = await instant('min(focus_active_users)');
        const instance = (await stack.state()).instances[0];
        const page = await httpFrom(`http://127.0.0.1:${instance?.port}/dashboard`);
        const activeUsers = String(page.json<{ activeUsers: number }>().activeUsers);
        seen = `max ${max?.value?.[1]}, min ${min?.value?.[1]}, /dashboard ${activeUsers}`;
        return (
          Number(activeUsers) >= CALLERS.length && max?.value?.[1] === activeUsers && min?.value?.[1] === activeUsers
        );
      },
      40_000,
      'focus_active_users to count every caller on every instance',
    ).catch((error: Error) => {
      throw new Error(`${error.message} (last seen: ${seen})`);
    });
  });

  it('evaluates every dashboard expression, and the main panels show data', async () => {
    const empty = new Set<string>();
    const failures: string[] = [];
    await waitUntil(
      async () => {
        empty.clear();
        failures.length = 0;
        const end = Date.now() / 1000;
        for (const panel of panels) {
          let hasData = false;
          for (const target of panel.targets ?? []) {
            const answer = await api<{ result: Series[] }>('/api/v1/query_range', {
              query: toPromQL(target.expr),
              start: String(end - 120),
              end: String(end),
              step: '5',
            });
            if (answer.status !== 'success') {
              failures.push(`${panel.title} ${target.refId}: ${answer.error}`);
              continue;
            }
            hasData ||= answer.data.result.some((series) => (series.values ?? []).some(([, value]) => value !== 'NaN'));
          }
          if (MUST_HAVE_DATA.includes(panel.title) && !hasData) {
            empty.add(panel.title);
          }
        }
        return failures.length === 0 && empty.size === 0;
      },
      60_000,
      'data in the main panels',
    ).catch((error: Error) => {
      throw new Error(`${error.message}; failed: ${failures.join('; ')}; still empty: ${[...empty].join(', ')}`);
    });
    expect(panels.map((panel) => panel.title)).toEqual(expect.arrayContaining(MUST_HAVE_DATA));
  });

  it('evaluates every alert rule without error, in queries and in the rule manager', async () => {
    const file = parse(await readFile(new URL('../../../prometheus/alerts.yml', import.meta.url), 'utf8')) as {
      groups: { rules: { alert: string; expr: string }[] }[];
    };
    const rules = file.groups.flatMap((group) => group.rules);
    for (const rule of rules) {
      await expect(instant(rule.expr), rule.alert).resolves.toBeInstanceOf(Array);
    }
    let loaded: LoadedRule[] = [];
    await waitUntil(
      async () => {
        const answer = await api<{ groups: { rules: LoadedRule[] }[] }>('/api/v1/rules');
        loaded = answer.data.groups.flatMap((group) => group.rules);
        return loaded.length === rules.length && loaded.every((rule) => rule.health !== 'unknown');
      },
      30_000,
      'every rule to be evaluated',
    );
    expect(loaded.map((rule) => ({ rule: rule.name, health: rule.health, error: rule.lastError ?? '' }))).toEqual(
      rules.map((rule) => ({ rule: rule.alert, health: 'ok', error: '' })),
    );
  });

  it('follows make scale: a new instance is scraped within seconds', async () => {
    await stack.make('scale', 'N=4');
    await waitUntil(
      async () => (await upTargets('focus-backend')).length === 4,
      30_000,
      'the fourth backend to be scraped',
    );
    expect(sent).toBeGreaterThan(100);
  });
});
