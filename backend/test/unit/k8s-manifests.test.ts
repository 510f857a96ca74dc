import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ScaledObject } from '@kubernetes-models/keda/keda.sh/v1alpha1';
import { PrometheusRule, ServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
import type { Redis } from 'ioredis';
import Koa from 'koa';
import { Deployment } from 'kubernetes-models/apps/v1';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { ConfigMap, Namespace, Service, ServiceAccount } from 'kubernetes-models/v1';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { generatedFiles, REPO_ROOT } from '../../../deploy/k8s/tools/generate.js';
import { configMapHash, type K8sObject, renderKustomization } from '../../../deploy/k8s/tools/kustomize-render.js';
import { CONFIG_VARIABLES, loadConfig } from '../../src/config.js';
import { healthRoutes } from '../../src/routes/health-routes.js';

/**
 * deploy/k8s, validated without a cluster: the kustomizations rendered (by a renderer of the
 * features they use, deploy/k8s/tools/kustomize-render.ts), every object checked against the
 * Kubernetes API schemas and the KEDA and Prometheus-operator CRD schemas (kubernetes-models),
 * and the promises the manifests make checked against the app itself: its settings, its routes,
 * its shutdown timings, and the files the manifests copy.
 */

const K8S = join(REPO_ROOT, 'deploy/k8s');
const KUSTOMIZATIONS = ['base', 'overlays/production', 'overlays/production-keda'] as const;
const rendered = Object.fromEntries(
  KUSTOMIZATIONS.map((name) => [name, renderKustomization(join(K8S, name))]),
) as Record<(typeof KUSTOMIZATIONS)[number], K8sObject[]>;

/** Settings the cluster leaves at their defaults, and why (README, "Configuration"). */
const LEFT_TO_DEFAULT: Record<string, string> = {
  LISTEN_FD: 'a socket handed over by the local runner; the pod listens on HOST:PORT',
  INSTANCE_ID: 'hostname:port is the pod name:3000, unique per pod',
  SIMULATOR_PORT: 'no simulator in the cluster (ALLOW_EMBEDDED_SIMULATOR=false)',
  MAX_BODY_BYTES: 'the app default (64 KiB); Caddy caps bodies at 1 MB in front',
  HTTP_HEADERS_TIMEOUT_MS: 'default 10 s; Caddy cuts slow clients in front (read_header)',
  HTTP_REQUEST_TIMEOUT_MS: 'default 30 s (receiving the request only; streams are not cut)',
  SENTRY_DSN: 'optional error tracking: add it to the focus-secrets Secret and a SENTRY_DSN_FILE mount to turn it on',
  HTTP_KEEP_ALIVE_TIMEOUT_MS: "default 65 s, longer than Caddy's 30 s keep-alive (checked below)",
  REDIS_COMMAND_TIMEOUT_MS: 'default 500 ms',
  REDIS_SENTINELS: 'a managed Redis gives one primary endpoint (REDIS_URL); set it for a Sentinel chart',
  REDIS_SENTINEL_NAME: 'only with REDIS_SENTINELS',
  REDIS_CLUSTER_NODES: 'set it when the managed Redis runs in cluster mode (its configuration endpoint)',
  REDIS_TLS_CA_FILE: "system CAs verify a managed Redis' certificate; mount a CA for a private one",
  REDIS_WAIT_REPLICAS: 'default 1: admission waits for one replica, as managed Redis has',
  REDIS_WAIT_TIMEOUT_MS: 'default 200 ms, under REDIS_COMMAND_TIMEOUT_MS',
  GROQ_BASE_URL: 'https://api.groq.com with a key',
  GROQ_TIMEOUT_MS: 'default',
  GROQ_MAX_TOKENS: 'default',
  GROQ_TEMPERATURE: 'default',
  QUOTA_MAX_WAIT_MS: 'default',
  QUOTA_WINDOW_MS: "default: the providers' minute (a test/simulator knob)",
  FALLBACK_BASE_URL: 'no fallback unless the operator adds one (README)',
  FALLBACK_MODEL: 'only with FALLBACK_BASE_URL',
  FALLBACK_TIMEOUT_MS: 'only with FALLBACK_BASE_URL',
  FALLBACK_RPM: 'only with FALLBACK_BASE_URL',
  FALLBACK_TPM: 'only with FALLBACK_BASE_URL',
  FALLBACK_RPD: 'only with FALLBACK_BASE_URL',
  FALLBACK_TPD: 'only with FALLBACK_BASE_URL',
  UPSTREAM_MAX_ATTEMPTS: 'default',
  UPSTREAM_RETRY_BUDGET_MS: 'default',
  UPSTREAM_RETRY_BASE_MS: 'default',
  BREAKER_FAILURE_THRESHOLD: 'default',
  BREAKER_COOLDOWN_MS: 'default',
  COALESCE_WAIT_MS: 'default',
  MAX_REQUESTS_PER_MINUTE: 'default (per client IP, cluster-wide through Redis)',
  POLLS_PER_MINUTE: 'default',
  CACHE_TTL_SECONDS: 'default',
  MAX_MESSAGE_CHARS: 'default',
  MAX_HISTORY_MESSAGES: 'default',
  ROLE: 'all: every pod serves the API and runs a worker (one Deployment)',
  QUEUE_ATTEMPTS: 'default',
  QUEUE_BACKOFF_MS: 'default',
  QUEUE_RESULT_TTL_SECONDS: 'default',
  QUEUE_MAX_WAITING: 'default',
  QUEUE_LOCK_MS: 'default',
  IDEMPOTENCY_TTL_SECONDS: 'default',
  ACTIVE_USER_WINDOW_SECONDS: 'default',
  DATABASE_TIMEOUT_MS: 'default',
  AUTH_TOKEN_TTL_SECONDS: 'default',
  AUTH_JWKS_URL: 'device accounts only unless the operator adds a provider',
  AUTH_ISSUER: 'only with AUTH_JWKS_URL',
  AUTH_AUDIENCE: 'only with AUTH_JWKS_URL',
  AUTH_REQUIRED: 'default false: the app signs up device accounts itself',
  SIGNUPS_PER_IP_PER_HOUR: 'default',
  USER_REQUESTS_PER_MINUTE: 'default',
  USER_TOKENS_PER_DAY: 'default',
  USER_MAX_CONCURRENT: 'default',
  GATEWAY_MAX_TOKENS: 'default',
  STREAM_HEARTBEAT_MS: "default 15 s, well under load balancers' idle timeouts (60 s and more)",
  SAFETY_ON_GATEWAY: 'default true: the /v1 routes run the crisis check too',
  SAFETY_MODEL: 'rules only unless the operator names a moderation model',
  SAFETY_MODEL_TIMEOUT_MS: 'only with SAFETY_MODEL',
  SAFETY_HISTORY_TURNS: 'default',
};

/** The secrets: never in a ConfigMap or a literal value, always from the Secret. */
const SECRETS = [
  'GROQ_API_KEY',
  'AUTH_JWT_SECRET',
  'ADMIN_TOKEN',
  'DATABASE_URL',
  'LOG_CALLER_SALT',
  'FALLBACK_API_KEY',
  'REDIS_PASSWORD',
];

const MODELS: Record<string, new (data: never) => { validate(): void }> = {
  'v1/Namespace': Namespace,
  'v1/ServiceAccount': ServiceAccount,
  'v1/Service': Service,
  'v1/ConfigMap': ConfigMap,
  'apps/v1/Deployment': Deployment,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'autoscaling/v2/HorizontalPodAutoscaler': HorizontalPodAutoscaler,
  'networking.k8s.io/v1/NetworkPolicy': NetworkPolicy,
  'monitoring.coreos.com/v1/ServiceMonitor': ServiceMonitor,
  'monitoring.coreos.com/v1/PrometheusRule': PrometheusRule,
  'keda.sh/v1alpha1/ScaledObject': ScaledObject,
};

/** The models' TypeScript interface of each kind: module and type name. */
const TYPES: Record<string, [string, string]> = {
  'v1/Namespace': ['kubernetes-models/v1', 'INamespace'],
  'v1/ServiceAccount': ['kubernetes-models/v1', 'IServiceAccount'],
  'v1/Service': ['kubernetes-models/v1', 'IService'],
  'v1/ConfigMap': ['kubernetes-models/v1', 'IConfigMap'],
  'apps/v1/Deployment': ['kubernetes-models/apps/v1', 'IDeployment'],
  'policy/v1/PodDisruptionBudget': ['kubernetes-models/policy/v1', 'IPodDisruptionBudget'],
  'autoscaling/v2/HorizontalPodAutoscaler': ['kubernetes-models/autoscaling/v2', 'IHorizontalPodAutoscaler'],
  'networking.k8s.io/v1/NetworkPolicy': ['kubernetes-models/networking.k8s.io/v1', 'INetworkPolicy'],
  'monitoring.coreos.com/v1/ServiceMonitor': [
    '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1',
    'IServiceMonitor',
  ],
  'monitoring.coreos.com/v1/PrometheusRule': [
    '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1',
    'IPrometheusRule',
  ],
  'keda.sh/v1alpha1/ScaledObject': ['@kubernetes-models/keda/keda.sh/v1alpha1', 'IScaledObject'],
};

// Loose views of the objects, for the checks below (the schemas above check the shapes).
type Labels = Record<string, string>;
interface Probe {
  httpGet: { path: string; port: string | number };
}
interface Container {
  name: string;
  image: string;
  ports?: { name: string; containerPort: number }[];
  env?: { name: string; value?: string; valueFrom?: { secretKeyRef?: { name: string; key: string } } }[];
  envFrom?: { configMapRef?: { name: string } }[];
  startupProbe?: Probe;
  readinessProbe?: Probe;
  livenessProbe?: Probe;
  lifecycle?: { preStop?: { exec?: { command: string[] } } };
  securityContext?: Record<string, unknown> & { capabilities?: { drop?: string[]; add?: string[] } };
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean }[];
}
interface PodSpec {
  containers: Container[];
  automountServiceAccountToken?: boolean;
  serviceAccountName?: string;
  terminationGracePeriodSeconds?: number;
  securityContext?: Record<string, unknown>;
  topologySpreadConstraints?: { topologyKey: string; labelSelector: { matchLabels: Labels } }[];
  volumes?: {
    name: string;
    emptyDir?: object;
    secret?: { secretName: string };
    configMap?: { name: string };
  }[];
}
interface DeploymentView {
  spec: {
    replicas?: number;
    selector: { matchLabels: Labels };
    template: { metadata: { labels: Labels }; spec: PodSpec };
  };
}

const all = (objects: K8sObject[], kind: string) => objects.filter((object) => object.kind === kind);
const one = (objects: K8sObject[], kind: string, name: string): K8sObject => {
  const found = objects.filter((object) => object.kind === kind && object.metadata.name === name);
  expect(found, `${kind}/${name}`).toHaveLength(1);
  return found[0] as K8sObject;
};
const deployment = (objects: K8sObject[], name: string) =>
  one(objects, 'Deployment', name) as unknown as K8sObject & DeploymentView;
const selects = (selector: Labels, labels: Labels) =>
  Object.keys(selector).length > 0 && Object.entries(selector).every(([key, value]) => labels[key] === value);
const podLabels = (objects: K8sObject[]) =>
  all(objects, 'Deployment').map((object) => ({
    name: object.metadata.name,
    labels: (object as unknown as DeploymentView).spec.template.metadata.labels,
  }));
/** The Deployments whose pods a label selector picks. */
const selected = (objects: K8sObject[], selector: Labels) =>
  podLabels(objects)
    .filter((pod) => selects(selector, pod.labels))
    .map((pod) => pod.name);
const backendContainer = (objects: K8sObject[]) =>
  deployment(objects, 'focus-backend').spec.template.spec.containers.find((c) => c.name === 'backend') as Container;
const configMapData = (objects: K8sObject[], prefix: string) => {
  const found = all(objects, 'ConfigMap').filter((object) => object.metadata.name.startsWith(`${prefix}-`));
  expect(found, prefix).toHaveLength(1);
  return (found[0] as K8sObject).data as Record<string, string>;
};

/** `caddy adapt` of a Caddyfile beside the files it imports, as JSON. */
function adaptCaddyfile(files: Record<string, string>): unknown {
  const dir = mkdtempSync(join(tmpdir(), 'k8s-caddy-'));
  try {
    for (const [file, content] of Object.entries(files)) {
      writeFileSync(join(dir, file), content);
    }
    const args = ['adapt', '--config', join(dir, 'Caddyfile'), '--adapter', 'caddyfile'];
    return JSON.parse(execFileSync('caddy', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Every reverse_proxy handler in an adapted config. */
function reverseProxies(value: unknown): Record<string, unknown>[] {
  if (Array.isArray(value)) {
    return value.flatMap(reverseProxies);
  }
  if (value === null || typeof value !== 'object') {
    return [];
  }
  const object = value as Record<string, unknown>;
  return object.handler === 'reverse_proxy' ? [object] : Object.values(object).flatMap(reverseProxies);
}

describe('deploy/k8s renderer', () => {
  it('hashes generated ConfigMaps as kustomize does (its own test vectors) and renames their references', () => {
    expect(configMapHash('', undefined)).toBe('6ct58987ht');
    expect(configMapHash('', { one: '' })).toBe('9g67k2htb6');
    const objects = rendered['overlays/production'];
    const config = all(objects, 'ConfigMap').find((object) => object.metadata.name.startsWith('focus-backend-config-'));
    expect(config?.metadata.name).toBe(
      `focus-backend-config-${configMapHash('focus-backend-config', config?.data as Record<string, string>)}`,
    );
    expect(backendContainer(objects).envFrom?.[0]?.configMapRef?.name).toBe(config?.metadata.name);
    const caddyVolume = deployment(objects, 'focus-caddy').spec.template.spec.volumes?.find((v) => v.name === 'config');
    expect(caddyVolume?.configMap?.name).toMatch(/^focus-caddy-[a-z0-9]{10}$/);
    expect(all(objects, 'ConfigMap').map((object) => object.metadata.name)).toContain(caddyVolume?.configMap?.name);
  });
});

describe.each(KUSTOMIZATIONS)('deploy/k8s/%s', (name) => {
  const objects = rendered[name];

  it('validates every object against the Kubernetes API and CRD schemas', () => {
    expect(objects.length).toBeGreaterThan(10);
    for (const object of objects) {
      const Model = MODELS[`${object.apiVersion}/${object.kind}`];
      expect(Model, `a schema for ${object.apiVersion} ${object.kind}`).toBeDefined();
      expect(
        () => new (Model as NonNullable<typeof Model>)(object as never).validate(),
        object.metadata.name,
      ).not.toThrow();
    }
  });

  it('puts every namespaced object in the focus namespace and inlines no Secret', () => {
    for (const object of objects) {
      expect(object.metadata.namespace, `${object.kind}/${object.metadata.name}`).toBe(
        object.kind === 'Namespace' ? undefined : 'focus',
      );
      expect(object.metadata.labels?.['app.kubernetes.io/part-of']).toBe('focus');
    }
    expect(one(objects, 'Namespace', 'focus').metadata.labels?.['pod-security.kubernetes.io/enforce']).toBe(
      'restricted',
    );
    expect(all(objects, 'Secret')).toEqual([]);
  });

  it('selects the pods it means: Services, PDBs, autoscalers, spreads, NetworkPolicies', () => {
    for (const object of all(objects, 'Deployment')) {
      const { spec } = object as unknown as DeploymentView;
      expect(selects(spec.selector.matchLabels, spec.template.metadata.labels), object.metadata.name).toBe(true);
      for (const spread of spec.template.spec.topologySpreadConstraints ?? []) {
        expect(selected(objects, spread.labelSelector.matchLabels)).toEqual([object.metadata.name]);
      }
    }
    const services = Object.fromEntries(
      all(objects, 'Service').map((object) => [
        object.metadata.name,
        selected(objects, (object.spec as { selector: Labels }).selector),
      ]),
    );
    expect(services).toEqual({
      'focus-backend': ['focus-backend'],
      'focus-backend-headless': ['focus-backend'],
      'focus-caddy': ['focus-caddy'],
      'focus-caddy-metrics': ['focus-caddy'],
    });
    // Every Service port's targetPort is a named port of the pods it selects.
    for (const service of all(objects, 'Service')) {
      const spec = service.spec as { selector: Labels; ports: { targetPort: string }[] };
      const [target] = selected(objects, spec.selector);
      const ports = deployment(objects, target as string).spec.template.spec.containers.flatMap((c) =>
        (c.ports ?? []).map((p) => p.name),
      );
      for (const port of spec.ports) {
        expect(ports, service.metadata.name).toContain(port.targetPort);
      }
    }
    const pdbs = all(objects, 'PodDisruptionBudget').map((object) =>
      selected(objects, (object.spec as { selector: { matchLabels: Labels } }).selector.matchLabels),
    );
    expect(pdbs.sort()).toEqual([['focus-backend'], ['focus-caddy']]);
    for (const scaler of [...all(objects, 'HorizontalPodAutoscaler'), ...all(objects, 'ScaledObject')]) {
      const target = (scaler.spec as { scaleTargetRef: { kind?: string; name: string } }).scaleTargetRef;
      expect(target.kind ?? 'Deployment').toBe('Deployment');
      expect(deployment(objects, target.name).spec.replicas, 'no replicas under an autoscaler').toBeUndefined();
    }
    // NetworkPolicies: each names pods that exist, by the labels those pods carry.
    type Peer = { podSelector?: { matchLabels?: Labels }; namespaceSelector?: { matchLabels?: Labels } };
    for (const policy of all(objects, 'NetworkPolicy')) {
      const spec = policy.spec as {
        podSelector: { matchLabels?: Labels };
        ingress?: { from?: Peer[] }[];
        egress?: { to?: Peer[] }[];
      };
      if (spec.podSelector.matchLabels) {
        expect(selected(objects, spec.podSelector.matchLabels), policy.metadata.name).toHaveLength(1);
      }
      const peers = [
        ...(spec.ingress ?? []).flatMap((r) => r.from ?? []),
        ...(spec.egress ?? []).flatMap((r) => r.to ?? []),
      ];
      for (const peer of peers.filter((p) => p.podSelector?.matchLabels && !p.namespaceSelector)) {
        expect(selected(objects, peer.podSelector?.matchLabels as Labels), policy.metadata.name).toHaveLength(1);
      }
    }
  });

  it('runs the backend non-root, read-only, without a service-account token, /tmp on an emptyDir', () => {
    for (const object of all(objects, 'Deployment')) {
      const pod = (object as unknown as DeploymentView).spec.template.spec;
      expect(pod.automountServiceAccountToken, object.metadata.name).toBe(false);
      expect(pod.securityContext?.runAsNonRoot).toBe(true);
      expect(pod.securityContext?.seccompProfile).toEqual({ type: 'RuntimeDefault' });
      for (const container of pod.containers) {
        expect(container.securityContext).toMatchObject({
          allowPrivilegeEscalation: false,
          readOnlyRootFilesystem: true,
          runAsNonRoot: true,
        });
        expect(container.securityContext?.capabilities?.drop).toEqual(['ALL']);
        // Restricted Pod Security allows adding back this one only (see the Caddy Deployment).
        expect(container.securityContext?.capabilities?.add ?? []).toEqual(
          container.name === 'caddy' ? ['NET_BIND_SERVICE'] : [],
        );
        for (const mount of container.volumeMounts ?? []) {
          const volume = pod.volumes?.find((v) => v.name === mount.name);
          expect(volume, mount.name).toBeDefined();
        }
      }
    }
    const backend = deployment(objects, 'focus-backend').spec.template.spec;
    expect(backend.serviceAccountName).toBe('focus-backend');
    expect(one(objects, 'ServiceAccount', 'focus-backend').automountServiceAccountToken).toBe(false);
    const tmp = backendContainer(objects).volumeMounts?.find((mount) => mount.mountPath === '/tmp');
    expect(backend.volumes?.find((volume) => volume.name === tmp?.name)?.emptyDir).toBeDefined();
    expect(backend.topologySpreadConstraints?.map((spread) => spread.topologyKey)).toEqual([
      'kubernetes.io/hostname',
      'topology.kubernetes.io/zone',
    ]);
  });

  it('sets or deliberately defaults every setting the app reads, and the result loads', () => {
    const data = configMapData(objects, 'focus-backend-config');
    const env = backendContainer(objects).env ?? [];
    const fromEnv = env.map((variable) => variable.name.replace(/_FILE$/, ''));
    const set = new Set([...Object.keys(data), ...fromEnv]);
    const unknown = [...set].filter((variable) => !CONFIG_VARIABLES.includes(variable) && variable !== 'NODE_OPTIONS');
    expect(unknown, 'settings the app does not read').toEqual([]);
    expect(CONFIG_VARIABLES.filter((variable) => !set.has(variable) && !(variable in LEFT_TO_DEFAULT))).toEqual([]);
    expect(
      Object.keys(LEFT_TO_DEFAULT).filter((variable) => set.has(variable)),
      'set and listed as default',
    ).toEqual([]);
    expect(Object.keys(LEFT_TO_DEFAULT).filter((variable) => !CONFIG_VARIABLES.includes(variable))).toEqual([]);
    // Secrets: files or optional references from focus-backend-secrets, never a value here.
    expect(SECRETS.filter((secret) => secret in data)).toEqual([]);
    for (const variable of env.filter((v) => SECRETS.includes(v.name.replace(/_FILE$/, '')))) {
      if (variable.name.endsWith('_FILE')) {
        expect(variable.value).toBe(`/run/secrets/focus/${variable.name.replace(/_FILE$/, '')}`);
      } else {
        expect(variable.valueFrom?.secretKeyRef).toMatchObject({ name: 'focus-backend-secrets', key: variable.name });
      }
    }
    // The settings load as the pod would load them, with stand-ins for the mounted secret files.
    const dir = mkdtempSync(join(tmpdir(), 'k8s-secrets-'));
    try {
      const stand: Record<string, string> = {
        GROQ_API_KEY: 'gsk_stand_in',
        AUTH_JWT_SECRET: 'x'.repeat(40),
        ADMIN_TOKEN: 'a'.repeat(24),
        DATABASE_URL: 'postgres://focus:password@db.example.internal:5432/focus',
        LOG_CALLER_SALT: 's'.repeat(32),
      };
      const podEnv: Record<string, string> = { ...data };
      for (const variable of env.filter((v) => v.value !== undefined)) {
        const secret = variable.name.replace(/_FILE$/, '');
        if (variable.name.endsWith('_FILE')) {
          writeFileSync(join(dir, secret), stand[secret] ?? '');
          podEnv[variable.name] = join(dir, secret);
        } else {
          podEnv[variable.name] = variable.value as string;
        }
      }
      const config = loadConfig(podEnv);
      expect(config.HOST).toBe('0.0.0.0');
      expect(config.GROQ_API_KEY).toBe('gsk_stand_in');
      expect(config.ALLOW_EMBEDDED_SIMULATOR).toBe(false);
      expect(config.QUEUE_SHUTDOWN_GRACE_MS).toBeLessThan(config.SHUTDOWN_TIMEOUT_MS);
      // Caddy closes an idle connection first, so it never writes to one a backend is closing.
      const caddyKeepAlive = /keepalive (\d+)s/.exec(configMapData(objects, 'focus-caddy').Caddyfile ?? '')?.[1];
      expect(Number(caddyKeepAlive) * 1000).toBeLessThan(config.HTTP_KEEP_ALIVE_TIMEOUT_MS);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('gives a stopping pod time to drain and to finish a 60 s stream before Kubernetes kills it', () => {
    const data = configMapData(objects, 'focus-backend-config');
    const pod = deployment(objects, 'focus-backend').spec.template.spec;
    const preStop = backendContainer(objects).lifecycle?.preStop?.exec?.command;
    expect(preStop?.[0]).toBe('sleep');
    const preStopSeconds = Number(preStop?.[1]);
    const [drain, timeout, queueGrace] = ['SHUTDOWN_DRAIN_MS', 'SHUTDOWN_TIMEOUT_MS', 'QUEUE_SHUTDOWN_GRACE_MS'].map(
      (key) => Number(data[key]),
    ) as [number, number, number];
    // Caddy's view of the headless name lags by the DNS TTL (5 s) + its refresh (1 s).
    expect(preStopSeconds * 1000 + drain).toBeGreaterThanOrEqual(6000);
    expect(timeout).toBeGreaterThanOrEqual(drain + 60_000 + queueGrace);
    expect(pod.terminationGracePeriodSeconds ?? 30).toBeGreaterThanOrEqual(preStopSeconds + timeout / 1000 + 5);
    // Caddy: its own grace for streams in flight, inside its pod's.
    const caddyfile = configMapData(objects, 'focus-caddy').Caddyfile as string;
    const caddyGrace = Number(/grace_period (\d+)s/.exec(caddyfile)?.[1]);
    expect(caddyGrace).toBeGreaterThanOrEqual(60);
    const caddy = deployment(objects, 'focus-caddy').spec.template.spec;
    const caddyPreStop = Number(caddy.containers[0]?.lifecycle?.preStop?.exec?.command[1]);
    expect(caddy.terminationGracePeriodSeconds ?? 30).toBeGreaterThan(caddyPreStop + caddyGrace);
  });
});

describe('deploy/k8s, against the app and the stack', () => {
  const objects = rendered['overlays/production'];

  it('probes the routes the app serves: /healthz alive, /readyz 200 when ready and 503 draining', async () => {
    const container = backendContainer(objects);
    expect(container.startupProbe?.httpGet.path).toBe('/healthz');
    expect(container.livenessProbe?.httpGet.path).toBe('/healthz');
    expect(container.readinessProbe?.httpGet.path).toBe('/readyz');
    for (const probe of [container.startupProbe, container.livenessProbe, container.readinessProbe]) {
      expect(container.ports?.find((port) => port.name === probe?.httpGet.port)?.containerPort).toBe(3000);
    }
    const lifecycle = { draining: false };
    const app = new Koa();
    app.use(healthRoutes({ redis: { ping: async () => 'PONG' } as unknown as Redis, lifecycle }).routes());
    const server = createServer(app.callback());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      expect((await fetch(`${url}${container.livenessProbe?.httpGet.path}`)).status).toBe(200);
      expect((await fetch(`${url}${container.readinessProbe?.httpGet.path}`)).status).toBe(200);
      lifecycle.draining = true;
      expect((await fetch(`${url}${container.readinessProbe?.httpGet.path}`)).status).toBe(503);
      expect((await fetch(`${url}${container.livenessProbe?.httpGet.path}`)).status).toBe(200);
    } finally {
      server.close();
    }
  });

  it('keeps the generated files identical to their sources (run deploy/k8s/tools/generate.ts)', () => {
    for (const [path, content] of Object.entries(generatedFiles())) {
      expect(readFileSync(join(REPO_ROOT, path), 'utf8'), path).toBe(content);
    }
  });

  it('serves the same public-entry rules as deploy/caddy and proxies as compose, through a Caddyfile that adapts', () => {
    const files = configMapData(objects, 'focus-caddy');
    const publicEntry = readFileSync(join(REPO_ROOT, 'deploy/caddy/public-entry.caddy'), 'utf8');
    expect(files['public-entry.caddy']).toBe(publicEntry);
    // The pod's layout: both files in /etc/caddy. Debian's Caddy 2.6 adapts what 2.11 runs.
    const json = adaptCaddyfile(files);
    const headless = one(objects, 'Service', 'focus-backend-headless').spec as {
      clusterIP: string;
      ports: { port: number }[];
    };
    expect(headless.clusterIP).toBe('None');
    const [proxy, ...others] = reverseProxies(json);
    expect(others).toEqual([]);
    expect(proxy?.dynamic_upstreams).toEqual({
      name: 'focus-backend-headless',
      port: String(headless.ports[0]?.port),
      refresh: 1_000_000_000,
      source: 'a',
    });
    // The same proxying as compose's (retries, timeouts, flushing, keep-alive), upstreams aside.
    const compose = reverseProxies(
      adaptCaddyfile({
        Caddyfile: readFileSync(join(REPO_ROOT, 'deploy/compose/Caddyfile'), 'utf8'),
        'public-entry.caddy': publicEntry,
      }),
    );
    const withoutUpstreams = ({ dynamic_upstreams: _upstreams, ...rest }: Record<string, unknown>) => rest;
    expect(compose).toHaveLength(1);
    expect(withoutUpstreams(proxy ?? {})).toEqual(withoutUpstreams(compose[0] ?? {}));
    const caddy = deployment(objects, 'focus-caddy').spec.template.spec.containers[0] as Container;
    const text = JSON.stringify(json);
    for (const port of caddy.ports ?? []) {
      expect(text).toContain(`"listen":[":${port.containerPort}"]`);
    }
    expect(caddy.readinessProbe?.httpGet).toEqual({ path: '/healthz', port: 'metrics' });
    expect(text).toMatch(/"path":\["\/healthz"\]/);
    const service = one(objects, 'Service', 'focus-caddy').spec as { type: string; externalTrafficPolicy: string };
    expect(service).toMatchObject({ type: 'LoadBalancer', externalTrafficPolicy: 'Local' });
  });

  it('alerts with prometheus/alerts.yml and shows grafana/dashboards/focus-backend.json', () => {
    const rule = one(objects, 'PrometheusRule', 'focus-backend');
    const alerts = parse(readFileSync(join(REPO_ROOT, 'prometheus/alerts.yml'), 'utf8')) as { groups: unknown };
    expect((rule.spec as { groups: unknown }).groups).toEqual(alerts.groups);
    const dashboard = one(objects, 'ConfigMap', 'focus-backend-dashboard');
    expect(dashboard.metadata.labels?.grafana_dashboard).toBe('1');
    expect((dashboard.data as Record<string, string>)['focus-backend.json']).toBe(
      readFileSync(join(REPO_ROOT, 'grafana/dashboards/focus-backend.json'), 'utf8'),
    );
    // The alerts and the dashboard filter on job="focus-backend": the ServiceMonitor's jobLabel
    // takes it from the one Service it selects (not the headless one: no pod scraped twice).
    const monitor = one(objects, 'ServiceMonitor', 'focus-backend').spec as {
      jobLabel: string;
      selector: { matchLabels: Labels };
      endpoints: { port: string; path: string }[];
    };
    const services = all(objects, 'Service').filter((service) =>
      selects(monitor.selector.matchLabels, service.metadata.labels ?? {}),
    );
    expect(services.map((service) => service.metadata.name)).toEqual(['focus-backend']);
    expect(services[0]?.metadata.labels?.[monitor.jobLabel]).toBe('focus-backend');
    expect(monitor.endpoints).toMatchObject([{ port: 'http', path: '/metrics' }]);
    const caddyMonitor = one(objects, 'ServiceMonitor', 'focus-caddy').spec as { selector: { matchLabels: Labels } };
    expect(
      all(objects, 'Service')
        .filter((service) => selects(caddyMonitor.selector.matchLabels, service.metadata.labels ?? {}))
        .map((service) => service.metadata.name),
    ).toEqual(['focus-caddy-metrics']);
  });

  it('autoscales on CPU with a slow scale-in (HPA), or on CPU and queue depth (KEDA) instead', () => {
    const hpa = one(objects, 'HorizontalPodAutoscaler', 'focus-backend').spec as {
      minReplicas: number;
      maxReplicas: number;
      metrics: { resource: { name: string } }[];
      behavior: { scaleDown: { stabilizationWindowSeconds: number } };
    };
    expect(hpa.metrics.map((metric) => metric.resource.name)).toEqual(['cpu']);
    expect(hpa.behavior.scaleDown.stabilizationWindowSeconds).toBeGreaterThanOrEqual(300);
    const keda = rendered['overlays/production-keda'];
    expect(all(keda, 'HorizontalPodAutoscaler')).toEqual([]);
    const scaled = one(keda, 'ScaledObject', 'focus-backend').spec as {
      minReplicaCount: number;
      maxReplicaCount: number;
      triggers: { type: string; metadata: Record<string, string> }[];
      advanced: { horizontalPodAutoscalerConfig: { behavior: unknown } };
    };
    expect([scaled.minReplicaCount, scaled.maxReplicaCount]).toEqual([hpa.minReplicas, hpa.maxReplicas]);
    expect(scaled.advanced.horizontalPodAutoscalerConfig.behavior).toEqual(hpa.behavior);
    expect(scaled.triggers.map((trigger) => trigger.type)).toEqual(['cpu', 'prometheus']);
    expect(scaled.triggers[1]?.metadata.query).toMatch(/^max\(focus_queue_jobs\{.*state="waiting".*\}\)$/);
    expect(scaled.triggers[1]?.metadata.query).toContain('job="focus-backend"');
  });

  it('runs a tagged image from a registry, and Caddy 2.11 (body kept on a retried dial)', () => {
    const images = all(objects, 'Deployment').flatMap((object) =>
      (object as unknown as DeploymentView).spec.template.spec.containers.map((container) => container.image),
    );
    expect(images).toEqual(['registry.example.com/focus/focus-backend:0.1.0', 'caddy:2.11-alpine']);
    expect(images.filter((image) => image.endsWith(':latest') || !image.includes(':'))).toEqual([]);
  });
});

describe('deploy/k8s field names', () => {
  // The schemas above accept fields they do not know (the Kubernetes OpenAPI does not close
  // its objects); the API server's strict field validation would refuse a misspelt one. The
  // same models' TypeScript interfaces catch them: every rendered object becomes an object
  // literal typed with its interface, and tsc's excess-property check names any unknown field.
  it('uses no field the API or the CRDs do not define (tsc excess-property check)', () => {
    const dir = join(REPO_ROOT, 'node_modules/.cache', `k8s-field-check-${process.pid}`);
    mkdirSync(dir, { recursive: true });
    try {
      const imports = new Set<string>();
      const lines: string[] = [];
      KUSTOMIZATIONS.forEach((name, n) => {
        rendered[name].forEach((object, i) => {
          const [module, type] = TYPES[`${object.apiVersion}/${object.kind}`] ?? [];
          expect(type, `${object.apiVersion} ${object.kind}`).toBeDefined();
          imports.add(`import type { ${type} } from '${module}';`);
          lines.push(`// ${name}: ${object.kind}/${object.metadata.name}`);
          lines.push(`export const o${n}_${i}: ${type} = ${JSON.stringify(object)};`);
        });
      });
      writeFileSync(join(dir, 'objects.ts'), `${[...imports].join('\n')}\n${lines.join('\n')}\n`);
      writeFileSync(
        join(dir, 'tsconfig.json'),
        JSON.stringify({
          compilerOptions: {
            target: 'ES2022',
            module: 'NodeNext',
            moduleResolution: 'NodeNext',
            strict: true,
            noEmit: true,
            skipLibCheck: true,
            types: [],
          },
          files: ['objects.ts'],
        }),
      );
      let output = '';
      try {
        execFileSync(join(REPO_ROOT, 'node_modules/.bin/tsc'), ['-p', join(dir, 'tsconfig.json')], {
          encoding: 'utf8',
          stdio: ['ignore', 'pipe', 'pipe'],
        });
      } catch (error) {
        const failed = error as { stdout?: string; stderr?: string };
        output = `${failed.stdout ?? ''}${failed.stderr ?? ''}`;
      }
      const source = readFileSync(join(dir, 'objects.ts'), 'utf8').split('\n');
      // Each error with the object it is in (the comment line above that object).
      const errors = [...output.matchAll(/objects\.ts\((\d+),\d+\): error TS\d+: (.*)/g)].map(
        ([, line, message]) => `${source[Number(line) - 2]?.slice(3)}: ${message}`,
      );
      expect(errors).toEqual([]);
      expect(output).toBe('');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
