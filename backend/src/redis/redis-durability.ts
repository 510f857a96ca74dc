import type { Cluster, Redis } from 'ioredis';
import type { Logger } from 'pino';

/**
 * What the Redis in use promises about queued jobs: BullMQ needs
 * `maxmemory-policy noeviction` (an evicted key breaks a job or the line), and
 * a restart keeps only what it persisted. Checked once per process, at the
 * first connection; a managed Redis may refuse CONFIG, and then INFO (which
 * does not tell whether RDB snapshots are configured) is read instead.
 */
export interface RedisDurability {
  source: 'config' | 'info';
  evictionPolicy: string | undefined;
  appendOnly: boolean;
  /** Undefined when only INFO could be read. */
  snapshots: boolean | undefined;
  /** Bytes; 0: no limit. */
  maxmemory: number | undefined;
  /** Why CONFIG GET was not used. */
  configRefused?: string;
}

const infoField = (info: string, name: string) => new RegExp(`^${name}:(.*?)\\r?$`, 'm').exec(info)?.[1];

export async function readRedisDurability(redis: Redis): Promise<RedisDurability> {
  try {
    const flat = (await redis.config('GET', 'maxmemory-policy', 'appendonly', 'save', 'maxmemory')) as string[];
    const values = new Map<string, string>();
    for (let index = 0; index + 1 < flat.length; index += 2) {
      values.set(flat[index] as string, flat[index + 1] as string);
    }
    return {
      source: 'config',
      evictionPolicy: values.get('maxmemory-policy'),
      appendOnly: values.get('appendonly') === 'yes',
      snapshots: (values.get('save') ?? '').trim() !== '',
      maxmemory: Number(values.get('maxmemory') ?? Number.NaN),
    };
  } catch (error) {
    const [memory, persistence] = await Promise.all([redis.info('memory'), redis.info('persistence')]);
    const maxmemory = infoField(memory, 'maxmemory');
    return {
      source: 'info',
      evictionPolicy: infoField(memory, 'maxmemory_policy'),
      appendOnly: infoField(persistence, 'aof_enabled') === '1',
      snapshots: undefined,
      maxmemory: maxmemory === undefined ? undefined : Number(maxmemory),
      configRefused: (error as Error).message,
    };
  }
}

/** Logs once what the Redis in use can lose; never throws. */
export async function checkRedisDurability(redis: Redis, logger: Logger): Promise<void> {
  const log = logger.child({ component: 'redis-durability' });
  let found: RedisDurability;
  try {
    found = await readRedisDurability(redis);
  } catch (error) {
    log.warn(
      { err: { message: (error as Error).message } },
      'cannot check how Redis evicts and persists (CONFIG and INFO refused): make sure it runs with noeviction and appendonly',
    );
    return;
  }
  if (found.configRefused !== undefined) {
    log.info(
      { refused: found.configRefused },
      'CONFIG GET refused (a managed Redis?): eviction and persistence read from INFO, RDB snapshots unknown',
    );
  }
  if (found.evictionPolicy !== 'noeviction') {
    log.warn(
      { maxmemoryPolicy: found.evictionPolicy ?? 'unknown' },
      'Redis evicts keys under memory pressure: a queued job can vanish; set maxmemory-policy noeviction',
    );
  }
  if (!found.appendOnly && found.snapshots === false) {
    log.warn('Redis does not persist (no append-only file, no RDB snapshots): a restart drops every queued job');
  } else if (!found.appendOnly) {
    log.info(
      { snapshots: found.snapshots ?? 'unknown' },
      'Redis has no append-only file: a restart loses the jobs queued since its last snapshot',
    );
  }
  if (found.evictionPolicy === 'noeviction' && found.appendOnly) {
    log.info({ maxmemory: found.maxmemory }, 'Redis keeps queued jobs: noeviction, append-only file');
  }
}

/** Runs the check once, when the client is first ready (at once if it already is). */
export function watchRedisDurability(redis: Redis, logger: Logger): void {
  const run = () => {
    if (!('isCluster' in redis && redis.isCluster)) {
      void checkRedisDurability(redis, logger);
      return;
    }
    // A cluster's masters are configured one by one, and a keyless CONFIG reaches any one of them: check each.
    for (const master of (redis as unknown as Cluster).nodes('master')) {
      void checkRedisDurability(master, logger.child({ redisNode: `${master.options.host}:${master.options.port}` }));
    }
  };
  if (redis.status === 'ready') {
    run();
  } else {
    redis.once('ready', run);
  }
}
