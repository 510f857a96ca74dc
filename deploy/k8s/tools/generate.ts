import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parse, stringify } from 'yaml';

/**
 * The files under deploy/k8s that are copies of, or made from, files elsewhere in the repository
 * (kustomize reads nothing outside the kustomization's folder, so they cannot be referenced):
 *
 *   base/caddy/public-entry.caddy                   = deploy/caddy/public-entry.caddy
 *   components/monitoring/focus-backend.json        = grafana/dashboards/focus-backend.json
 *   components/monitoring/prometheus-rule.yaml      <- prometheus/alerts.yml
 *
 * `npx tsx deploy/k8s/tools/generate.ts` rewrites them; backend/test/unit/k8s-manifests.test.ts
 * fails when one differs from what this would write.
 */

export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const K8S = 'deploy/k8s';

const read = (path: string) => readFileSync(join(REPO_ROOT, path), 'utf8');

function prometheusRule(): string {
  const alerts = parse(read('prometheus/alerts.yml')) as { groups: unknown[] };
  const rule = {
    apiVersion: 'monitoring.coreos.com/v1',
    kind: 'PrometheusRule',
    metadata: { name: 'focus-backend', labels: { 'app.kubernetes.io/name': 'focus-backend' } },
    spec: { groups: alerts.groups },
  };
  return `# Generated from prometheus/alerts.yml by deploy/k8s/tools/generate.ts: edit that file, then run
# \`npx tsx deploy/k8s/tools/generate.ts\`. The rules' job="focus-backend" is the ServiceMonitor's job.
${stringify(rule, { lineWidth: 0 })}`;
}

/** Repository-relative path of each generated file, and the content it must have. */
export function generatedFiles(): Record<string, string> {
  return {
    [`${K8S}/base/caddy/public-entry.caddy`]: read('deploy/caddy/public-entry.caddy'),
    [`${K8S}/components/monitoring/focus-backend.json`]: read('grafana/dashboards/focus-backend.json'),
    [`${K8S}/components/monitoring/prometheus-rule.yaml`]: prometheusRule(),
  };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  for (const [path, content] of Object.entries(generatedFiles())) {
    writeFileSync(join(REPO_ROOT, path), content);
    process.stdout.write(`wrote ${path}\n`);
  }
}
