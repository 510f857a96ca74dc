import type { CdfPoint, TimelinePoint } from './plots.js';
import type { QuestionRecord } from './users.js';

/** Figures of one run, from the records of every question and what the stack said. */

export function percentile(samples: readonly number[], share: number): number | null {
  if (samples.length === 0) {
    return null;
  }
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(share * sorted.length) - 1)] ?? null;
}

export function spread(samples: readonly number[]) {
  return {
    count: samples.length,
    p50Ms: percentile(samples, 0.5),
    p95Ms: percentile(samples, 0.95),
    p99Ms: percentile(samples, 0.99),
    maxMs: samples.length > 0 ? Math.max(...samples) : null,
  };
}

export function countBy<T>(items: readonly T[], key: (item: T) => string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const item of items) {
    const name = key(item);
    out[name] = (out[name] ?? 0) + 1;
  }
  return out;
}

/** At most ~400 points per series: enough for a smooth CDF. */
export function cdfPoints(records: readonly QuestionRecord[]): CdfPoint[] {
  const answered = records.filter((record) => record.outcome === 'answered');
  const series: [string, number[]][] = [
    ['all', answered.map((record) => record.ms)],
    ['stream (whole answer)', answered.filter((r) => r.via === 'stream' && !r.fellBack).map((r) => r.ms)],
    ['stream (first word)', answered.flatMap((r) => (r.ttftMs === undefined ? [] : [r.ttftMs]))],
    ['queue (polling)', answered.filter((r) => r.via === 'queue' || r.fellBack).map((r) => r.ms)],
  ];
  return series.flatMap(([via, samples]) => {
    const sorted = [...samples].sort((a, b) => a - b);
    const step = Math.max(1, Math.floor(sorted.length / 400));
    const points: CdfPoint[] = [];
    for (let index = 0; index < sorted.length; index += step) {
      points.push({ via, ms: Math.max(1, sorted[index] as number), share: (index + 1) / sorted.length });
    }
    if (sorted.length > 0) {
      points.push({ via, ms: Math.max(1, sorted[sorted.length - 1] as number), share: 1 });
    }
    return points;
  });
}

export function timeline(records: readonly QuestionRecord[], bucketS: number, untilS: number): TimelinePoint[] {
  const points: TimelinePoint[] = [];
  for (let start = 0; start < untilS; start += bucketS) {
    const asked = records.filter((r) => r.at >= start * 1000 && r.at < (start + bucketS) * 1000);
    const times = asked.filter((r) => r.outcome === 'answered').map((r) => r.ms);
    const answeredHere = records.filter(
      (r) => r.outcome === 'answered' && r.at + r.ms >= start * 1000 && r.at + r.ms < (start + bucketS) * 1000,
    );
    points.push({
      t: start,
      p50Ms: percentile(times, 0.5),
      p95Ms: percentile(times, 0.95),
      answersPerSecond: Math.round((answeredHere.length / bucketS) * 100) / 100,
      askedPerSecond: Math.round((asked.length / bucketS) * 100) / 100,
    });
  }
  return points;
}

export const round = (value: number, digits = 1) => Math.round(value * 10 ** digits) / 10 ** digits;

const cell = (value: unknown) => (value === null || value === undefined ? '–' : String(value));

export function table(header: string[], rows: unknown[][]): string {
  return [
    `| ${header.join(' | ')} |`,
    `| ${header.map(() => '---').join(' | ')} |`,
    ...rows.map((row) => `| ${row.map(cell).join(' | ')} |`),
  ].join('\n');
}
