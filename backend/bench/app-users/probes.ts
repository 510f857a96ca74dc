import { readFileSync } from 'node:fs';
import { Redis } from 'ioredis';

/** What the benchmark reads of the stack while it runs: /proc of the instances, their /metrics, Redis INFO. */

const TICKS_PER_SECOND = 100;

/** CPU seconds (user + system) of a process, from /proc/<pid>/stat; undefined when it is gone. */
export function cpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces), which ends with ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
  } catch {
    return undefined;
  }
}

/** Peak and current resident memory of a process (VmHWM, VmRSS), MB. */
export function memoryMb(pid: number): { peakRssMb: number; rssMb: number } | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0);
    return { peakRssMb: Math.round(kb('VmHWM') / 1024), rssMb: Math.round(kb('VmRSS') / 1024) };
  } catch {
    return undefined;
  }
}

/** Load average of the machine (1, 5, 15 min). */
export function loadAverage(): number[] {
  try {
    return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).map(Number);
  } catch {
    return [];
  }
}

/** Prometheus text: the sum of a metric's samples whose labels contain every `match` pair. */
export type MetricsText = string;

export async function scrape(url: string): Promise<MetricsText> {
  const response = await fetch(url);
  return response.ok ? response.text() : '';
}

export function metricSum(text: MetricsText, name: string, match: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name) || line.startsWith('#')) {
      continue;
    }
    const rest = line.slice(name.length);
    if (rest[0] !== ' ' && rest[0] !== '{') {
      continue;
    }
    const labels = rest[0] === '{' ? rest.slice(1, rest.indexOf('}')) : '';
    if (Object.entries(match).every(([key, value]) => labels.includes(`${key}="${value}"`))) {
      sum += Number(line.slice(line.lastIndexOf(' ') + 1)) || 0;
    }
  }
  return sum;
}

/** Calls per command from INFO commandstats. */
export async function commandStats(url: string): Promise<Record<string, number>> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    const info = await redis.info('commandstats');
    const calls: Record<string, number> = {};
    for (const match of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
      calls[match[1] as string] = Number(match[2]);
    }
    return calls;
  } finally {
    redis.disconnect();
  }
}

export function delta(after: Record<string, number>, before: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [key, value] of Object.entries(after)) {
    const change = value - (before[key] ?? 0);
    if (change > 0) {
      out[key] = change;
    }
  }
  return out;
}
