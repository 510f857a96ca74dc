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
  command?: string[];
  build?: { context: string; dockerfile: string };
  ports?: unknown[];
  expose?: string[];
  environment?: Record<string, string | null>;
  healthcheck?: { test: string[] };
  depends_on?: Record<string, { condition: string }>;
  volumes?: (string | { type: string; source: string; target: string; read_only?: boolean })[];
}

function composeConfig(
  env: Record<string, string> = {},
  files: string[] = [COMPOSE_FILE],
): { services: Record<string, ComposeService & { profiles?: string[] }> } {
  const text = execFileSync('docker-compose', [...files.flatMap((file) => ['-f', file]), 'config'], {
    encoding: 'utf8',
    env: { ...process.env, GROQ_API_KEY: '', PUBLIC_PORT: '', POSTGRES_PASSWORD: '', AUTH_JWT_SECRET: '', ...env },
  });
  return parse(text) as { services: Record<string, ComposeService> };
}

let defaults: ReturnType<typeof composeConfig> | undefined;
/** The file under the default environment, rendered once: each docker-compose run takes seconds to start. */
const defaultConfig = () => {
  defaults ??= composeConfig();
  return defaults;
};

/** Volumes in one shape, whether the client printed the short form (v1) or the long one (v2). */
function mounts(service: ComposeService | undefined): { source: string; target: string; readOnly: boolean }[] {
  return (service?.volumes ?? []).map((volume) => {
    if (typeof volume !== 'string') {
      return { source: volume.source, target: volume.target, readOnly: volume.read_only === true };
    }
    const [source = '', target = '', mode = ''] = volume.split(':');
    return { source, target, readOnly: mode.split(',').includes('ro') };
  });
}

/** `caddy adapt` in the container's layout: the Caddyfile and public-entry.caddy side by side in one folder. */
function adaptCaddyfile(caddyfile: string, env: Record<string, string> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'compose-caddy-'));
  copyFileSync(caddyfile, join(dir, 'Caddyfile'));
  copyFileSync(join(REPO_ROOT, 'deploy/caddy/public-entry.caddy'), join(dir, 'public-entry.caddy'));
  return execFileSync('caddy', ['adapt', '--config', join(dir, 'Caddyfile'), '--adapter', 'caddyfile'], {
    encoding: 'utf8',
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

function byTarget(a: { target: string }, b: { target: string }): number {
  return a.target.localeCompare(b.target);
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
    const { services } = defaultConfig();
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

  it('runs PostgreSQL 16 on a named volume, health-checked over TCP, before the replicas start', () => {
    const { services } = defaultConfig();
    const postgres = services.postgres;
    expect(postgres?.image).toBe('postgres:16-alpine');
    expect(postgres?.ports).toBeUndefined();
    expect(mounts(postgres)).toContainEqual({
      source: 'postgres-data',
      target: '/var/lib/postgresql/data',
      readOnly: false,
    });
    // The image's first-start initialisation listens on its Unix socket only: a TCP check is not fooled by it.
    expect(postgres?.healthcheck?.test).toEqual(['CMD', 'pg_isready', '-h', '127.0.0.1', '-U', 'focus', '-d', 'focus']);
    expect(services.backend?.depends_on?.postgres?.condition).toBe('service_healthy');
    expect(services.backend?.environment?.DATABASE_URL).toBe('postgres://focus:focus-local-only@postgres:5432/focus');
    expect(postgres?.environment).toMatchObject({ POSTGRES_USER: 'focus', POSTGRES_DB: 'focus' });
  });

  it('takes the PostgreSQL password from the environment, for the server and the replicas alike', () => {
    const { services } = composeConfig({ POSTGRES_PASSWORD: 'Not4Laptops' });
    expect(services.postgres?.environment?.POSTGRES_PASSWORD).toBe('Not4Laptops');
    expect(services.backend?.environment?.DATABASE_URL).toBe('postgres://focus:Not4Laptops@postgres:5432/focus');
  });

  it('gives every replica one token-signing secret: AUTH_JWT_SECRET from the environment, else a drawn one', () => {
    const { services } = defaultConfig();
    const backend = services.backend;
    expect(backend?.depends_on?.['jwt-secret']?.condition).toBe('service_completed_successfully');
    expect(mounts(backend)).toContainEqual({ source: 'jwt-secret', target: '/run/focus-secrets', readOnly: true });
    expect(backend?.environment?.AUTH_JWT_SECRET_FILE).toBe('/run/focus-secrets/auth_jwt_secret');
    expect(mounts(services['jwt-secret'])).toContainEqual({
      source: 'jwt-secret',
      target: '/secrets',
      readOnly: false,
    });
    // Drawn once: a restart keeps the secret, so issued tokens stay valid.
    const script = services['jwt-secret']?.command?.join(' ') ?? '';
    expect(script).toMatch(/^sh -c test -s \/secrets\/auth_jwt_secret \|\|/);
    // The replicas run as node (uid 1000) and must read it.
    expect(script).toContain('chown 1000:1000 /secrets/auth_jwt_secret');
    expect(composeConfig({ AUTH_JWT_SECRET: 'x'.repeat(40) }).services.backend?.environment?.AUTH_JWT_SECRET).toBe(
      'x'.repeat(40),
    );
  });

  it('passes every backend setting from the environment to the replicas', () => {
    const environment = defaultConfig().services.backend?.environment ?? {};
    const missing = CONFIG_VARIABLES.filter(
      (name) => !NOT_PASSED_THROUGH.includes(name) && !Object.hasOwn(environment, name),
    );
    expect(missing).toEqual([]);
    expect(environment.REDIS_URL).toBe('redis://redis:6379');
    expect(environment.TRUSTED_PROXIES).toBe('private');
  });

  it('mounts folders and files that exist: the Caddyfiles, prometheus/ and grafana/', () => {
    const { services } = defaultConfig();
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

  it('swaps every registry image for one built from local parts with OFFLINE_IMAGES (the same services)', () => {
    const online = defaultConfig().services;
    const offline = composeConfig({}, [COMPOSE_FILE, join(COMPOSE_DIR, 'docker-compose.offline.yml')]).services;
    expect(Object.keys(offline).sort()).toEqual(Object.keys(online).sort());
    const script = readFileSync(join(COMPOSE_DIR, 'offline/build-images.sh'), 'utf8');
    for (const [name, service] of Object.entries(offline)) {
      // Grafana has no Debian package: it runs offline only when its profile is asked for.
      if (service.profiles?.includes('grafana')) {
        continue;
      }
      expect(service.image, name).toMatch(/^focus[/-]/);
      expect(script, `${name}: ${service.image}`).toContain((service.image ?? '').split(':')[0]);
      // Merging two files may reorder a service's volumes. Caddy 2.6.2 gets its own Caddyfile.
      const caddyfile = (mount: { source: string; target: string }) =>
        mount.target === '/etc/caddy/Caddyfile' ? { ...mount, source: 'Caddyfile' } : mount;
      const { image: _online, build: _build, volumes: before, environment: was, ...rest } = online[name] ?? {};
      const { image: _offline, build: _built, volumes: after, profiles: _none, environment: is, ...same } = service;
      expect(same, name).toEqual(rest);
      expect(mounts({ volumes: after }).map(caddyfile).sort(byTarget), name).toEqual(
        mounts({ volumes: before }).map(caddyfile).sort(byTarget),
      );
      const { SHUTDOWN_DRAIN_MS: _drain, COMPOSE_PROJECT: _project, ...env } = is ?? {};
      const { SHUTDOWN_DRAIN_MS: _passed, ...passedOn } = was ?? {};
      expect(env, name).toEqual(passedOn);
    }
    expect(offline.grafana?.profiles).toEqual(['grafana']);
    expect(mounts(offline.caddy)).toContainEqual({
      source: join(COMPOSE_DIR, 'offline/Caddyfile'),
      target: '/etc/caddy/Caddyfile',
      readOnly: true,
    });
    expect(offline.caddy?.environment?.COMPOSE_PROJECT).toBe('compose');
    expect(offline.backend?.environment?.SHUTDOWN_DRAIN_MS).toBe('3000');
  });

  it('has a Caddyfile that adapts, proxying to every backend replica through Docker DNS', () => {
    const json = adaptCaddyfile(join(COMPOSE_DIR, 'Caddyfile'));
    expect(json).toContain('"dynamic_upstreams":{"name":"backend","port":"3000","refresh":1000000000,"source":"a"}');
    expect(json).toContain('"retries":3');
    expect(json).toContain('"listen":[":2019"]');
  });

  it('has an offline Caddyfile (Caddy 2.6.2) with 16 health-checked slots named after the replicas', () => {
    const json = adaptCaddyfile(join(COMPOSE_DIR, 'offline/Caddyfile'), { COMPOSE_PROJECT: 'focus' });
    for (let n = 1; n <= 16; n += 1) {
      expect(json).toContain(`{"dial":"focus_backend_${n}:3000"}`);
      expect(json).toContain(`{"dial":"focus-backend-${n}:3000"}`);
    }
    expect(json).toContain('"uri":"/readyz"');
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
    // The image runs the compiled JavaScript: no TypeScript toolchain at run time, no simulator unless asked.
    const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as {
      dependencies: Record<string, string>;
      scripts: { start: string };
    };
    expect(pkg.dependencies.tsx).toBeUndefined();
    expect(pkg.dependencies.typescript).toBeUndefined();
    // npm start's command, node flags included, without npm in between.
    const start = pkg.scripts.start.split(' ');
    expect(start.at(-1)).toBe('dist/src/main.js');
    expect(lines.at(-1)).toBe(`CMD [${start.map((word) => JSON.stringify(word)).join(', ')}]`);
    expect(dockerfile).toMatch(/NODE_ENV=production/);
    expect(dockerfile).toMatch(/ALLOW_EMBEDDED_SIMULATOR=false/);
    expect(dockerfile).toMatch(/COPY --from=build \/app\/dist \.\/dist/);
    // Everything the image copies is in the build context the .dockerignore lets through.
    const allowed = readFileSync(join(COMPOSE_DIR, 'Dockerfile.dockerignore'), 'utf8');
    const copied = lines
      .filter((line) => line.startsWith('COPY ') && !line.includes('--from='))
      .flatMap((line) => line.split(/\s+/).slice(1, -1));
    expect(copied.filter((path) => !allowed.includes(`!${path}`))).toEqual([]);
    expect(copied.filter((path) => !existsSync(join(REPO_ROOT, path)))).toEqual([]);
    // The replicas apply the SQL migrations at start: they must be in the image.
    expect(copied).toContain('backend/migrations');
  });
});
