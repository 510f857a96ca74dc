import type { Cluster, Redis } from 'ioredis';

/** Every value a key holds, as text, whatever its type. */
async function valuesOf(redis: Redis | Cluster, key: string): Promise<string[]> {
  switch (await redis.type(key)) {
    case 'string':
      return [(await redis.get(key)) ?? ''];
    case 'hash':
      return Object.entries(await redis.hgetall(key)).flat();
    case 'list':
      return redis.lrange(key, '0', '-1');
    case 'set':
      return redis.smembers(key);
    case 'zset':
      return redis.zrange(key, '0', '-1');
    case 'stream':
      return [JSON.stringify(await redis.xrange(key, '-', '+'))];
    default:
      return [];
  }
}

/**
 * The keys under `prefix` whose name or any value contains one of `needles`.
 * On a Redis Cluster every master is scanned: a SCAN sees one node's keys only.
 */
export async function keysMentioning(
  redis: Redis | Cluster,
  prefix: string,
  needles: readonly string[],
): Promise<string[]> {
  const found: string[] = [];
  const servers = 'nodes' in redis ? redis.nodes('master') : [redis];
  for (const server of servers) {
    const stream = server.scanStream({ match: `${prefix}*`, count: 500 });
    for await (const keys of stream as AsyncIterable<string[]>) {
      for (const key of keys) {
        const texts = [key, ...(await valuesOf(redis, key))];
        if (texts.some((text) => needles.some((needle) => text.includes(needle)))) {
          found.push(key);
        }
      }
    }
  }
  return found;
}
