import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { CONFIG_VARIABLES } from '../../src/config.js';

/**
 * The compose stack, validated as far as this machine allows without a Docker
 * engine: Debian's docker-compose parses and checks the file, the compose
 * Caddyfile adapts with the local caddy in the layout the container mounts,
 * and the Dockerfile keeps its promises (multi-stage, production deps, non-root).
 */

const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const COMPOSE_DIR = join(REPO_ROOT, 'deploy/compose');
const COMPOSE_FILE = join(COMPOSE_DIR, 'docker-compose.yml');

/** Set by the image or the compose file itself, or meaningless in a container. */
const NOT_PASSED_THROUGH = [
  'NODE_ENV',
  'HOST',
  'PORT',
  'LISTEN_FD',
  'INSTANCE_ID',
  'TRUSTED_PROXIES',
  'REDIS_URL',
  'SIMULATOR_PORT',
];

interface ComposeService {
  image?: string;
  build?: { context: string; dockerfile: string };
  ports?: unknown[];
  expose?: string[];
  environment?: Record<string, string | null>;
  healthcheck?: { test: string[] };
  depends_on?: Record<string, { condition: string }>;
  volumes?: (string | { type: string; source: string; target: string })[];
}

function composeConfig(): { services: Record<string, ComposeService> } {
  const text = execFileSync('docker-compose', ['-f', COMPOSE_FILE, 'config'], {
    encoding: 'utf8',
    env: { ...process.env, GROQ_API_KEY: '', PUBLIC_PORT: '' },
  });
  return parse(text) as { services: Record<string, ComposeService> };
}

function bindSources(service: ComposeService | undefined): string[] {
  return (service?.volumes ?? [])
    .map((volume) => (typeof volume === 'string' ? volume.split(':')[0] : volume.type === 'bind' ? volume.source : ''))
    .filter((source): source is string => Boolean(source?.startsWith('/')));
}

describe('deploy/compose', () => {
  it('is a valid compose file (docker-compose config -q)', () => {
    expect(() => execFileSync('docker-compose', ['-f', COMPOSE_FILE, 'config', '-q'], { stdio: 'pipe' })).not.toThrow();
  });

  it('scales the backend without a host port, behind Caddy on 8080, after a healthy Redis', () => {
    const { services } = composeConfig();
    const backend = services.backend;
    expect(backend?.ports).toBeUndefined();
    expect(backend?.expose).toEqual(['3000']);
    expect(backend?.build?.dockerfile).toBe('deploy/compose/Dockerfile');
    expect(resolve(backend?.build?.context ?? '')).toBe(resolve(REPO_ROOT));
    expect(backend?.depends_on?.redis?.condition).toBe('service_healthy');
    expect(services.redis?.healthcheck?.test).toContain('ping');
    expect(JSON.stringify(services.caddy?.ports)).toContain('8080');
    expect(services.caddy?.depends_on?.backend?.condition).toBe('service_healthy');
  });

  it('passes every backend setting from the environment to the replicas', () => {
    const environment = composeConfig().services.backend?.environment ?? {};
    const missing = CONFIG_VARIABLES.filter(
      (name) => !NOT_PASSED_THROUGH.includes(name) && !Object.hasOwn(environment, name),
    );
    expect(missing).toEqual([]);
    expect(environment.REDIS_URL).toBe('redis://redis:6379');
    expect(environment.TRUSTED_PROXIES).toBe('private');
  });

  it('mounts folders and files that exist: the Caddyfiles, prometheus/ and grafana/', () => {
    const { services } = composeConfig();
    const sources = ['caddy', 'prometheus', 'grafana'].flatMap((name) => bindSources(services[name]));
    expect(sources.map((source) => basename(source)).sort()).toEqual([
      'Caddyfile',
      'dashboards',
      'prometheus',
      'provisioning',
      'public-entry.caddy',
    ]);
    expect(sources.filter((source) => !existsSync(source))).toEqual([]);
    expect(existsSync(join(REPO_ROOT, 'prometheus/prometheus.yml'))).toBe(true);
  });

  it('has a Caddyfile that adapts, proxying to every backend replica through Docker DNS', () => {
    // The container's layout: both files side by side in /etc/caddy.
    const dir = mkdtempSync(join(tmpdir(), 'compose-caddy-'));
    copyFileSync(join(COMPOSE_DIR, 'Caddyfile'), join(dir, 'Caddyfile'));
    copyFileSync(join(REPO_ROOT, 'deploy/caddy/public-entry.caddy'), join(dir, 'public-entry.caddy'));
    const json = execFileSync('caddy', ['adapt', '--config', join(dir, 'Caddyfile'), '--adapter', 'caddyfile'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    expect(json).toContain('"dynamic_upstreams":{"name":"backend","port":"3000","refresh":1000000000,"source":"a"}');
    expect(json).toContain('"retries":3');
    expect(json).toContain('"listen":[":2019"]');
  });

  it('builds a multi-stage, non-root image with production dependencies and a health check', () => {
    const dockerfile = readFileSync(join(COMPOSE_DIR, 'Dockerfile'), 'utf8');
    const lines = dockerfile.split('\n').filter((line) => line.trim() !== '' && !line.trim().startsWith('#'));
    expect(lines.filter((line) => line.startsWith('FROM ')).length).toBeGreaterThanOrEqual(2);
    expect(dockerfile).toContain('npm ci --omit=dev');
    const user = lines.findIndex((line) => line.startsWith('USER '));
    expect(lines[user]).toBe('USER node');
    expect(user).toBeLessThan(lines.findIndex((line) => line.startsWith('CMD ')));
    expect(dockerfile).toMatch(/HEALTHCHECK .*\n.*\/readyz/);
    // The app runs with tsx, so it must survive --omit=dev.
    const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as {
      dependencies: Record<string, string>;
    };
    expect(pkg.dependencies.tsx).toBeDefined();
    // Everything the image copies is in the build context the .dockerignore lets through.
    const allowed = readFileSync(join(COMPOSE_DIR, 'Dockerfile.dockerignore'), 'utf8');
    const copied = lines
      .filter((line) => line.startsWith('COPY ') && !line.includes('--from='))
      .flatMap((line) => line.split(/\s+/).slice(1, -1));
    expect(copied.filter((path) => !allowed.includes(`!${path}`))).toEqual([]);
  });
});
