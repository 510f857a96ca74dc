import { readFile } from 'node:fs/promises';
import type { Dashboard, Panel, RowPanel } from '@grafana/schema';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import dashboardJson from '../../../grafana/dashboards/focus-backend.json' with { type: 'json' };

// Compile-time check: tsc (npx tsc --noEmit covers the tests) refuses this
// assignment if the JSON does not fit Grafana's Dashboard type.
const dashboard: Dashboard = dashboardJson;

const isRow = (panel: Panel | RowPanel): panel is RowPanel => panel.type === 'row';
const panels = (dashboard.panels ?? []).filter((panel): panel is Panel => !isRow(panel));

describe('grafana/dashboards/focus-backend.json', () => {
  it('is a titled dashboard with a stable uid', () => {
    expect(dashboard.title).toBe('Focus backend');
    expect(dashboard.uid).toBe('focus-backend');
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(36);
  });

  it('has unique panel ids and panels that stay inside the 24-column grid without overlapping', () => {
    const ids = (dashboard.panels ?? []).map((panel) => panel.id);
    expect(new Set(ids).size).toBe(ids.length);
    const cells = new Set<string>();
    for (const panel of dashboard.panels ?? []) {
      const grid = panel.gridPos;
      expect(grid, `panel ${panel.id} has a position`).toBeDefined();
      if (!grid) {
        continue;
      }
      expect(grid.x + grid.w).toBeLessThanOrEqual(24);
      for (let x = grid.x; x < grid.x + grid.w; x += 1) {
        for (let y = grid.y; y < grid.y + grid.h; y += 1) {
          const cell = `${x},${y}`;
          expect(cells.has(cell), `panel ${panel.id} overlaps another at ${cell}`).toBe(false);
          cells.add(cell);
        }
      }
    }
  });

  it('queries the provisioned Prometheus datasource in every panel, each target with a refId and an expression', async () => {
    const provisioning = parse(
      await readFile(new URL('../../../grafana/provisioning/datasources/prometheus.yml', import.meta.url), 'utf8'),
    ) as { datasources: { uid: string; type: string }[] };
    const datasource = provisioning.datasources[0];
    expect(panels.length).toBeGreaterThanOrEqual(15);
    for (const panel of panels) {
      expect(panel.title, `panel ${panel.id}`).toBeTruthy();
      expect(panel.datasource).toEqual({ type: datasource?.type, uid: datasource?.uid });
      expect(panel.targets?.length, panel.title).toBeGreaterThan(0);
      const refIds = (panel.targets ?? []).map((target) => target.refId);
      expect(new Set(refIds).size, panel.title).toBe(refIds.length);
      for (const target of panel.targets ?? []) {
        expect(typeof target.expr === 'string' && target.expr.length > 0, panel.title).toBe(true);
      }
    }
  });

  it('shows what the issue asks for at a glance', () => {
    const exprs = panels.flatMap((panel) => (panel.targets ?? []).map((target) => String(target.expr)));
    for (const metric of [
      'focus_http_requests_total',
      'focus_http_request_duration_seconds_bucket',
      'focus_active_users',
      'focus_cache_lookups_total',
      'focus_rate_limited_total',
      'focus_upstream_tokens_total',
      'focus_quota_limit_tokens',
      'focus_upstream_duration_seconds_bucket',
      'focus_upstream_calls_total',
      'focus_queue_jobs',
      'focus_queue_wait_seconds_bucket',
      'focus_fallback_total',
      'process_resident_memory_bytes',
      'nodejs_eventloop_lag_p99_seconds',
    ]) {
      expect(
        exprs.some((expr) => expr.includes(metric)),
        metric,
      ).toBe(true);
    }
  });
});
