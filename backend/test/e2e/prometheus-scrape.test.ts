import { readFile } from 'node:fs/promises';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import dashboard from '../../../grafana/dashboards/focus-backend.json' with { type: 'json' };
import { type BackendProcess, startBackendProcess, waitFor } from '../helpers/backend-process.js';
import { httpFrom } from '../helpers/http-from.js';
import { hasPrometheus, type PrometheusServer, startPrometheus } from '../helpers/prometheus-server.js';
import { testPrefix } from '../helpers/test-backend.js';

/**
 * A real Prometheus (Debian package) with prometheus.local.yml and alerts.yml,
 * scraping two backend processes found through file_sd, under a short load:
 * every dashboard expression and every alert rule must evaluate, and the
 * panels a person looks at first must show data.
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
];

interface Target {
  refId: string;
  expr: string;
}
interface DashboardPanel {
  title: string;
  type: string;
  targets?: Target[];
}
interface Series {
  metric: Record<string, string>;
  values?: [number, string][];
  value?: [number, string];
}
interface RuleGroup {
  rules: { name: string; query: string; health: string; lastError?: string; lastEvaluation: string }[];
}

const panels = (dashboard.panels as DashboardPanel[]).filter((panel) => panel.type !== 'row');
/** Grafana fills $__rate_interval in; for a 5 s scrape interval one minute is what it would choose. */
const toPromQL = (expr: string) => expr.replaceAll('$__rate_interval', '1m');

describe.skipIf(!(await hasPrometheus()))('Prometheus scraping a local stack', () => {
  const prefix = testPrefix('prom-e2e');
  let backends: BackendProcess[] = [];
  let prometheus: PrometheusServer;
  let loading = true;
  let load: Promise<void> = Promise.resolve();
  let sent = 0;

  const targetOf = (backend: BackendProcess) => ({
    targets: [`127.0.0.1:${backend.port}`],
    labels: { instance: backend.instanceId },
  });

  async function activeTargets(): Promise<string[]> {
    const answer = await prometheus.api<{
      activeTargets: { labels: { job: string; instance: string }; health: string }[];
    }>('/api/v1/targets', { state: 'active' });
    return answer.data.activeTargets
      .filter((target) => target.labels.job === 'focus-backend' && target.health === 'up')
      .map((target) => target.labels.instance)
      .sort();
  }

  async function instant(query: string): Promise<Series[]> {
    const answer = await prometheus.api<{ result: Series[] }>('/api/v1/query', { query });
    if (answer.status !== 'success') {
      throw new Error(`${query}: ${answer.error}`);
    }
    return answer.data.result;
  }

  async function drive() {
    while (loading) {
      const caller = CALLERS[sent % CALLERS.length] as string;
      const backend = backends[sent % backends.length] as BackendProcess;
      const body = sent % 10 === 9 ? { message: '' } : { message: QUESTIONS[sent % QUESTIONS.length] };
      sent += 1;
      await httpFrom(`${backend.url}/api/chat`, { localAddress: caller, body }).catch(() => undefined);
      await new Promise((resolve) => setTimeout(resolve, 15));
    }
  }

  beforeAll(async () => {
    backends = await Promise.all(
      [1, 2].map((index) =>
        startBackendProcess({ REDIS_PREFIX: prefix, INSTANCE_ID: `obs-e2e-${index}`, LOG_LEVEL: 'warn' }),
      ),
    );
    prometheus = await startPrometheus({ backends: [targetOf(backends[0] as BackendProcess)] });
    load = drive();
  });

  afterAll(async () => {
    loading = false;
    await load;
    await prometheus?.close();
    await Promise.all(backends.map((backend) => backend.kill()));
    const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
    for await (const keys of redis.scanStream({ match: `${prefix}*`, count: 500 }) as AsyncIterable<string[]>) {
      if (keys.length > 0) {
        await redis.del(...keys);
      }
    }
    await redis.quit();
  });

  it('follows the file_sd targets: an added instance is scraped within seconds', async () => {
    await waitFor(async () => (await activeTargets()).length === 1, 20_000, 'the first backend to be scraped');
    await prometheus.writeTargets('backends', backends.map(targetOf));
    await waitFor(
      async () => (await activeTargets()).join() === 'obs-e2e-1,obs-e2e-2',
      20_000,
      'the added backend to be scraped',
    );
  });

  it('sees the cluster-wide active users, the same on every instance', async () => {
    await waitFor(
      async () => {
        const [max] = await instant('max(focus_active_users)');
        const [min] = await instant('min(focus_active_users)');
        return max?.value?.[1] === String(CALLERS.length) && min?.value?.[1] === String(CALLERS.length);
      },
      30_000,
      `focus_active_users to reach ${CALLERS.length} on both instances`,
    );
  });

  it('evaluates every dashboard expression, and the main panels show data', async () => {
    const mustHave = new Set(MUST_HAVE_DATA);
    const missing = new Set<string>();
    await waitFor(
      async () => {
        missing.clear();
        const end = Date.now() / 1000;
        for (const panel of panels) {
          let hasData = false;
          for (const target of panel.targets ?? []) {
            const answer = await prometheus.api<{ result: Series[] }>('/api/v1/query_range', {
              query: toPromQL(target.expr),
              start: String(end - 120),
              end: String(end),
              step: '5',
            });
            expect(answer.status, `${panel.title} ${target.refId}: ${answer.error}`).toBe('success');
            hasData ||= answer.data.result.some((series) => (series.values ?? []).some(([, value]) => value !== 'NaN'));
          }
          if (mustHave.has(panel.title) && !hasData) {
            missing.add(panel.title);
          }
        }
        return missing.size === 0;
      },
      60_000,
      'data in the main panels',
    ).catch((error: Error) => {
      throw new Error(`${error.message}; still empty: ${[...missing].join(', ')}`);
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
    let loaded: RuleGroup['rules'] = [];
    await waitFor(
      async () => {
        const answer = await prometheus.api<{ groups: RuleGroup[] }>('/api/v1/rules');
        loaded = answer.data.groups.flatMap((group) => group.rules);
        return loaded.length === rules.length && loaded.every((rule) => rule.health !== 'unknown');
      },
      30_000,
      'every rule to be evaluated',
    );
    for (const rule of loaded) {
      expect({ rule: rule.name, health: rule.health, error: rule.lastError ?? '' }).toEqual({
        rule: rule.name,
        health: 'ok',
        error: '',
      });
    }
  });

  it('drops a removed instance from the scrape', async () => {
    await prometheus.writeTargets('backends', [targetOf(backends[0] as BackendProcess)]);
    await waitFor(async () => (await activeTargets()).join() === 'obs-e2e-1', 20_000, 'the removed backend to go');
    expect(sent).toBeGreaterThan(100);
  });
});
