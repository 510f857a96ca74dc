/**
 * estimatedTime from what the cluster measured (see job-ledger.ts, which keeps
 * the moving averages in Redis): how long apart jobs complete while others are
 * waiting (the service interval of the whole cluster, whatever the number of
 * instances or the upstream's pace) and how long one job takes.
 */
export interface Throughput {
  /** Mean gap between two completions while jobs were waiting, in ms. */
  intervalMs: number | undefined;
  /** Mean time one job spends in a worker, in ms. */
  durationMs: number | undefined;
}

export interface EtaFallback {
  /** Assumed duration of one job before any was measured. */
  jobMs: number;
  /** Workers assumed to share the line before any interval was measured. */
  concurrency: number;
}

/** Where a job stands, as the ledger read it. */
export type JobProgress =
  | { state: 'waiting'; position: number }
  | { state: 'delayed'; position: number; readyInMs: number }
  | { state: 'active'; runningForMs: number };

/** The seed's own guess per request, used until the cluster has measured anything. */
export const DEFAULT_JOB_MS = 2000;

/**
 * Seconds until the job's answer is ready, rounded up, at least 1.
 * A job at position p starts after about p completions, then takes one job's time.
 */
export function estimateSeconds(progress: JobProgress, throughput: Throughput, fallback: EtaFallback): number {
  const durationMs = throughput.durationMs ?? fallback.jobMs;
  const intervalMs = throughput.intervalMs ?? durationMs / Math.max(1, fallback.concurrency);
  let remainingMs: number;
  switch (progress.state) {
    case 'active':
      remainingMs = durationMs - progress.runningForMs;
      break;
    case 'waiting':
      remainingMs = progress.position * intervalMs + durationMs;
      break;
    case 'delayed':
      // Jobs ahead keep moving while this one sits out its delay.
      remainingMs = Math.max(progress.readyInMs, progress.position * intervalMs) + durationMs;
      break;
  }
  return Math.max(1, Math.ceil(remainingMs / 1000));
}

/** Reads a bias-corrected moving average (sum and weight fields, see ledger-scripts.ts). */
export function movingAverage(sum: string | null, weight: string | null): number | undefined {
  if (sum === null || weight === null) {
    return undefined;
  }
  const mean = Number(sum) / Number(weight);
  return Number.isFinite(mean) && Number(weight) > 0 ? mean : undefined;
}
