import { readFileSync } from 'node:fs';
import { BlockList, isIP } from 'node:net';
import { hostname } from 'node:os';
import { z } from 'zod';

/**
 * Every setting of a backend process, read once from the environment.
 * A bad value stops the process at start with one line per bad variable.
 * Each variable is documented in README.md ("Configuration").
 */

// Decimal digits only: Number() would also take "0x10", "1e3" or " " (as 0).
const integer = (fallback: number, min: number, max = Number.MAX_SAFE_INTEGER) =>
  z
    .string()
    .trim()
    .regex(/^\d+$/, 'expected a whole number')
    .transform(Number)
    .pipe(z.number().min(min).max(max))
    .default(fallback);

const booleanFlag = (fallback: boolean) =>
  z
    .enum(['true', 'false', '1', '0', 'yes', 'no'])
    .default(fallback ? 'true' : 'false')
    .transform((value) => value === 'true' || value === '1' || value === 'yes');

const optionalString = z
  .string()
  .trim()
  .transform((value) => (value === '' ? undefined : value))
  .optional();

// The parsers of the list values live here, so config stays a leaf (it imports no layer).

const NAMED_RANGES: Record<string, readonly string[]> = {
  loopback: ['127.0.0.0/8', '::1/128'],
  private: ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', 'fc00::/7'],
};

/**
 * Builds the set of proxies whose X-Forwarded-For we believe, from a comma
 * list of addresses, CIDRs and the names "loopback" and "private".
 * Throws on an entry that is none of these.
 */
export function parseTrustedProxies(spec: string): BlockList {
  const list = new BlockList();
  for (const entry of spec
    .split(',')
    .map((part) => part.trim())
    .filter(Boolean)) {
    for (const item of NAMED_RANGES[entry] ?? [entry]) {
      const [address, prefix] = item.split('/') as [string, string | undefined];
      const family = isIP(address);
      if (family === 0) {
        throw new Error(`TRUSTED_PROXIES: "${entry}" is not an address, a CIDR, "loopback" or "private"`);
      }
      const type = family === 6 ? 'ipv6' : 'ipv4';
      if (prefix === undefined) {
        list.addAddress(address, type);
        continue;
      }
      // Number('') is 0: "10.0.0.0/" must not become 0.0.0.0/0 and trust every peer.
      const bits = /^\d{1,3}$/.test(prefix) ? Number(prefix) : Number.NaN;
      if (!(bits <= (family === 6 ? 128 : 32))) {
        throw new Error(`TRUSTED_PROXIES: "${entry}" has an invalid prefix length`);
      }
      list.addSubnet(address, bits, type);
    }
  }
  return list;
}

export interface RedisEndpoint {
  host: string;
  port: number;
}

/** "host:port,host:port" (IPv6 as [addr]:port); throws with a plain message on a bad entry. */
export function parseRedisEndpoints(text: string): RedisEndpoint[] {
  const entries = text
    .split(',')
    .map((entry) => entry.trim())
    .filter(Boolean);
  if (entries.length === 0) {
    throw new Error('expected host:port[,host:port…]');
  }
  return entries.map((entry) => {
    const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^\s:[\]]+)):(\d{1,5})$/.exec(entry);
    const port = Number(match?.[3]);
    if (!match || port < 1 || port > 65_535) {
      throw new Error(`"${entry}" is not host:port`);
    }
    return { host: (match[1] ?? match[2]) as string, port };
  });
}

/** "host:port,host:port" (Sentinels, cluster nodes), parsed; unset when empty. */
const redisEndpoints = optionalString.transform((value, ctx) => {
  if (value === undefined) {
    return undefined;
  }
  try {
    return parseRedisEndpoints(value);
  } catch (error) {
    ctx.addIssue({ code: 'custom', message: (error as Error).message });
    return z.NEVER;
  }
});

const httpUrl = z.url({ protocol: /^https?$/ });

function readable(file: string): boolean {
  try {
    readFileSync(file);
    return true;
  } catch {
    return false;
  }
}

const configSchema = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  HOST: z.string().min(1).default('127.0.0.1'),
  PORT: integer(3000, 0, 65535),
  /** Listen on this inherited file descriptor instead of HOST:PORT (socket handed over by the local runner). */
  LISTEN_FD: z
    .string()
    .trim()
    .regex(/^\d+$/, 'expected a whole number')
    .transform(Number)
    .pipe(z.number().min(3).max(65_535))
    .optional(),
  // Sent as the X-Instance-Id header on every response, where Node refuses other characters.
  INSTANCE_ID: optionalString.refine((value) => value === undefined || /^[\x20-\x7e]{1,128}$/.test(value), {
    message: 'printable ASCII only, at most 128 characters',
  }),
  // Keys the HMAC naming callers in Redis and in access logs; the same on every instance (unset: a built-in key).
  LOG_CALLER_SALT: optionalString,
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  // Sentry, optional: unhandled errors go there too, scrubbed of every user text (SENTRY_DSN_FILE too).
  SENTRY_DSN: httpUrl.optional(),
  TRUSTED_PROXIES: z
    .string()
    .default('loopback')
    .superRefine((value, ctx) => {
      try {
        parseTrustedProxies(value);
      } catch (error) {
        ctx.addIssue({ code: 'custom', message: (error as Error).message.replace(/^TRUSTED_PROXIES: /, '') });
      }
    }),
  MAX_BODY_BYTES: integer(64 * 1024, 256, 10 * 1024 * 1024),
  // Receiving a request: its headers, then all of it (a stalled upload is cut); keep-alive idle time.
  HTTP_HEADERS_TIMEOUT_MS: integer(10_000, 100, 300_000),
  HTTP_REQUEST_TIMEOUT_MS: integer(30_000, 100, 600_000),
  HTTP_KEEP_ALIVE_TIMEOUT_MS: integer(65_000, 1000, 600_000),
  SHUTDOWN_DRAIN_MS: integer(2000, 0, 60_000),
  SHUTDOWN_TIMEOUT_MS: integer(15_000, 100, 120_000),

  REDIS_URL: z.url({ protocol: /^rediss?$/ }).default('redis://127.0.0.1:6379'),
  REDIS_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9:_.-]{1,64}$/, 'letters, digits and :_.- only, at most 64')
    .default('focus:'),
  REDIS_COMMAND_TIMEOUT_MS: integer(500, 20, 30_000),
  /** Sentinels (host:port list): connect to the primary they name instead of REDIS_URL's host. */
  REDIS_SENTINELS: redisEndpoints,
  /** Redis Cluster nodes (host:port list, a few of them are enough): the Cluster client instead of REDIS_URL's host. */
  REDIS_CLUSTER_NODES: redisEndpoints,
  REDIS_SENTINEL_NAME: z
    .string()
    .regex(/^[A-Za-z0-9._-]{1,64}$/, 'letters, digits and ._- only')
    .default('mymaster'),
  REDIS_PASSWORD: optionalString,
  // A CA to verify the server's certificate with (rediss:// only); the system's CAs otherwise.
  REDIS_TLS_CA_FILE: optionalString.refine((file) => file === undefined || readable(file), {
    message: 'cannot read the file',
  }),
  // Admission waits this long for this many replicas to hold a job before answering 202 (0: never waits).
  REDIS_WAIT_REPLICAS: integer(1, 0, 16),
  REDIS_WAIT_TIMEOUT_MS: integer(200, 1, 30_000),

  GROQ_API_KEY: optionalString,
  GROQ_BASE_URL: httpUrl.optional(),
  GROQ_MODEL: z.string().min(1).default('llama-3.1-8b-instant'),
  GROQ_TIMEOUT_MS: integer(10_000, 100, 120_000),
  GROQ_MAX_TOKENS: integer(300, 16, 8192),
  GROQ_TEMPERATURE: z.coerce.number().min(0).max(2).default(0.6),

  // Upstream resilience (llm/). Quotas: 0 = unlimited. Defaults: Groq's free tier of llama-3.1-8b-instant.
  GROQ_RPM: integer(30, 0),
  GROQ_TPM: integer(6000, 0),
  GROQ_RPD: integer(14_400, 0),
  GROQ_TPD: integer(500_000, 0),
  QUOTA_MAX_WAIT_MS: integer(5000, 0, 600_000),
  // The "minute" of every upstream's per-minute limits. A test/simulator knob: a short window lets a test of a full minute run in seconds.
  QUOTA_WINDOW_MS: integer(60_000, 1000, 3_600_000),
  FALLBACK_BASE_URL: httpUrl.optional(),
  FALLBACK_API_KEY: optionalString,
  FALLBACK_MODEL: optionalString,
  FALLBACK_TIMEOUT_MS: integer(10_000, 100, 120_000),
  FALLBACK_RPM: integer(0, 0),
  FALLBACK_TPM: integer(0, 0),
  FALLBACK_RPD: integer(0, 0),
  FALLBACK_TPD: integer(0, 0),
  UPSTREAM_MAX_ATTEMPTS: integer(3, 1, 10),
  UPSTREAM_RETRY_BUDGET_MS: integer(15_000, 1000, 300_000),
  UPSTREAM_RETRY_BASE_MS: integer(250, 10, 60_000),
  BREAKER_FAILURE_THRESHOLD: integer(5, 1, 1000),
  BREAKER_COOLDOWN_MS: integer(30_000, 100, 3_600_000),
  COALESCE_WAIT_MS: integer(20_000, 0, 300_000),

  MAX_REQUESTS_PER_MINUTE: integer(60, 1),
  // Status polls per caller per minute, per instance (in memory): the app polls every ~2 s.
  POLLS_PER_MINUTE: integer(120, 1),
  CACHE_TTL_SECONDS: integer(7200, 1),
  MAX_MESSAGE_CHARS: integer(2000, 1, 100_000),
  MAX_HISTORY_MESSAGES: integer(20, 0, 200),
  SIMULATOR_PORT: integer(0, 0, 65535),
  // Unset: allowed, except with NODE_ENV=production (a replica whose key went missing must not answer canned text).
  ALLOW_EMBEDDED_SIMULATOR: z
    .enum(['true', 'false', '1', '0', 'yes', 'no'])
    .transform((value) => value === 'true' || value === '1' || value === 'yes')
    .optional(),

  /** all: HTTP API and queue worker; api: no worker; worker: worker plus health and metrics only. */
  ROLE: z.enum(['all', 'api', 'worker']).default('all'),
  QUEUE_CONCURRENCY: integer(2, 1, 100),
  QUEUE_ATTEMPTS: integer(3, 1, 20),
  QUEUE_BACKOFF_MS: integer(5000, 1, 600_000),
  QUEUE_RESULT_TTL_SECONDS: integer(3600, 10, 7 * 86_400),
  QUEUE_MAX_WAITING: integer(500, 1, 1_000_000),
  QUEUE_LOCK_MS: integer(15_000, 1000, 600_000),
  QUEUE_SHUTDOWN_GRACE_MS: integer(8000, 0, 120_000),
  IDEMPOTENCY_TTL_SECONDS: integer(3600, 1, 86_400),

  ADMIN_TOKEN: optionalString
    .refine((value) => value === undefined || value.length >= 16, { message: 'at least 16 characters' })
    // `Authorization: Bearer <token>` carries one word: such a token could never be sent.
    .refine((value) => value === undefined || !/\s/.test(value), { message: 'no whitespace allowed' }),
  ACTIVE_USER_WINDOW_SECONDS: integer(300, 10, 86_400),

  // Users (PostgreSQL holds accounts; nothing on the request path queries it).
  DATABASE_URL: z.url({ protocol: /^postgres(ql)?$/ }).default('postgres://postgres@127.0.0.1:5432/focus'),
  DATABASE_POOL_MAX: integer(5, 1, 100),
  DATABASE_TIMEOUT_MS: integer(2000, 100, 60_000),
  // Signs device tokens; unset, the instances share one generated secret kept in PostgreSQL.
  AUTH_JWT_SECRET: optionalString.refine((value) => value === undefined || value.length >= 32, {
    message: 'at least 32 characters',
  }),
  AUTH_TOKEN_TTL_SECONDS: integer(30 * 86_400, 60, 365 * 86_400),
  AUTH_JWKS_URL: httpUrl.optional(),
  AUTH_ISSUER: optionalString,
  AUTH_AUDIENCE: optionalString,
  AUTH_REQUIRED: booleanFlag(false),
  SIGNUPS_PER_IP_PER_HOUR: integer(20, 1),
  USER_REQUESTS_PER_MINUTE: integer(30, 1),
  USER_TOKENS_PER_DAY: integer(50_000, 0),
  USER_MAX_CONCURRENT: integer(2, 1, 100),

  // The OpenAI-compatible gateway (/v1) and streams.
  GATEWAY_MAX_TOKENS: integer(1024, 16, 32_768),
  STREAM_HEARTBEAT_MS: integer(15_000, 1000, 120_000),

  // Crisis messages (safety/, SAFETY.md). The rules always run on the app's routes.
  /** false: no safety check on the OpenAI-compatible /v1 routes (SDK callers that run their own). */
  SAFETY_ON_GATEWAY: booleanFlag(true),
  /** A moderation model (e.g. a Llama Guard model) asked through the Groq adapter when the rules find nothing. */
  SAFETY_MODEL: optionalString,
  /** Past this the model's verdict is dropped and the rules decide alone. */
  SAFETY_MODEL_TIMEOUT_MS: integer(1500, 50, 30_000),
  /** The latest user turns of the history read with the new message. */
  SAFETY_HISTORY_TURNS: integer(3, 0, 50),
});

type RawConfig = z.infer<typeof configSchema>;

/** Every variable a backend reads (deploy files check that they pass each one on). */
export const CONFIG_VARIABLES: readonly string[] = Object.keys(configSchema.shape);

export interface Config
  extends Omit<RawConfig, 'INSTANCE_ID' | 'GROQ_BASE_URL' | 'GROQ_API_KEY' | 'ALLOW_EMBEDDED_SIMULATOR'> {
  readonly INSTANCE_ID: string;
  readonly ALLOW_EMBEDDED_SIMULATOR: boolean;
  readonly GROQ_API_KEY: string | undefined;
  /** Undefined when no key is set: main.ts then starts the bundled simulator. */
  readonly GROQ_BASE_URL: string | undefined;
}

const SECRET_VARIABLES = [
  'GROQ_API_KEY',
  'ADMIN_TOKEN',
  'FALLBACK_API_KEY',
  'LOG_CALLER_SALT',
  'AUTH_JWT_SECRET',
  'DATABASE_URL',
  'REDIS_PASSWORD',
] as const;

export class ConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`invalid configuration:\n${problems.join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** Resolves `NAME_FILE` (a mounted secret) into `NAME`; the file wins only when NAME is unset. */
function resolveSecretFiles(env: NodeJS.ProcessEnv, problems: string[]): NodeJS.ProcessEnv {
  const resolved = { ...env };
  for (const name of SECRET_VARIABLES) {
    const file = env[`${name}_FILE`];
    if (!file || env[name]) {
      continue;
    }
    let value: string;
    try {
      value = readFileSync(file, 'utf8').trim();
    } catch (error) {
      problems.push(`${name}_FILE: cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
      continue;
    }
    // An empty secret would read as "no key" and silently switch to the simulator.
    if (value === '') {
      problems.push(`${name}_FILE: ${file} is empty`);
    }
    resolved[name] = value;
  }
  return resolved;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const problems: string[] = [];
  const withSecrets = resolveSecretFiles(env, problems);
  // Empty (or blank) strings mean "unset", as in most shells' `VAR= cmd`.
  const present = Object.fromEntries(
    Object.entries(withSecrets).filter(([, value]) => value !== undefined && value.trim() !== ''),
  );
  const parsed = configSchema.safeParse(present);
  if (!parsed.success) {
    problems.push(...schemaProblems(parsed.error.issues, present));
  }
  // Checked here, with the other problems, rather than after Redis is connected.
  const allowSimulator = parsed.data?.ALLOW_EMBEDDED_SIMULATOR ?? parsed.data?.NODE_ENV !== 'production';
  if (parsed.success) {
    problems.push(...combinationProblems(parsed.data, allowSimulator));
  }
  if (problems.length > 0 || !parsed.success) {
    throw new ConfigError(problems);
  }
  const raw = parsed.data;
  if (raw.GROQ_API_KEY && !raw.GROQ_BASE_URL) {
    raw.GROQ_BASE_URL = 'https://api.groq.com';
  }
  return Object.freeze({
    ...raw,
    ALLOW_EMBEDDED_SIMULATOR: allowSimulator,
    GROQ_API_KEY: raw.GROQ_API_KEY,
    GROQ_BASE_URL: raw.GROQ_BASE_URL,
    INSTANCE_ID: raw.INSTANCE_ID ?? `${hostname()}:${raw.PORT}`,
  });
}

/** One line per bad variable, a secret's value redacted. */
function schemaProblems(issues: readonly z.core.$ZodIssue[], present: Record<string, string | undefined>): string[] {
  return issues.map((issue) => {
    const name = String(issue.path[0] ?? 'environment');
    const shown = (SECRET_VARIABLES as readonly string[]).includes(name)
      ? '<redacted>'
      : JSON.stringify(present[name] ?? null);
    return `${name}: ${issue.message} (got ${shown})`;
  });
}

/** Variables valid one by one that do not go together. */
function combinationProblems(data: RawConfig, allowSimulator: boolean): string[] {
  const problems: string[] = [];
  if (data.FALLBACK_BASE_URL && !data.FALLBACK_MODEL) {
    problems.push('FALLBACK_MODEL: required when FALLBACK_BASE_URL is set');
  }
  if (!data.GROQ_API_KEY && !data.GROQ_BASE_URL && !allowSimulator) {
    problems.push('GROQ_API_KEY: required when ALLOW_EMBEDDED_SIMULATOR=false (or set GROQ_BASE_URL)');
  }
  if (data.HTTP_HEADERS_TIMEOUT_MS > data.HTTP_REQUEST_TIMEOUT_MS) {
    problems.push('HTTP_HEADERS_TIMEOUT_MS: must not be longer than HTTP_REQUEST_TIMEOUT_MS');
  }
  // An external provider's tokens are only as safe as the issuer and audience they are checked against.
  if (data.AUTH_JWKS_URL && (!data.AUTH_ISSUER || !data.AUTH_AUDIENCE)) {
    problems.push('AUTH_JWKS_URL: needs AUTH_ISSUER and AUTH_AUDIENCE too');
  }
  return [...problems, ...redisProblems(data)];
}

function redisProblems(data: RawConfig): string[] {
  const problems: string[] = [];
  if (data.REDIS_CLUSTER_NODES && data.REDIS_SENTINELS) {
    problems.push(
      'REDIS_CLUSTER_NODES: a Redis Cluster has no Sentinels; set one of REDIS_CLUSTER_NODES, REDIS_SENTINELS',
    );
  }
  if (data.REDIS_CLUSTER_NODES && !/^\/?0?$/.test(new URL(data.REDIS_URL).pathname)) {
    problems.push('REDIS_CLUSTER_NODES: a Redis Cluster has database 0 only; drop the database from REDIS_URL');
  }
  if (data.REDIS_TLS_CA_FILE && !data.REDIS_URL.startsWith('rediss:')) {
    problems.push('REDIS_TLS_CA_FILE: needs a rediss:// REDIS_URL');
  }
  // WAIT blocks the connection it runs on: it must give up before that connection's commands time out.
  if (data.REDIS_WAIT_REPLICAS > 0 && data.REDIS_WAIT_TIMEOUT_MS >= data.REDIS_COMMAND_TIMEOUT_MS) {
    problems.push('REDIS_WAIT_TIMEOUT_MS: must be below REDIS_COMMAND_TIMEOUT_MS');
  }
  return problems;
}
