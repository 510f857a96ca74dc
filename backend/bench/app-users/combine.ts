import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { renderPng, type SweepPoint, sweepSpec } from './plots.js';
import { round, table } from './report.js';

/**
 * One view over several app-users invocations (a sweep split over several
 * runs): `node --import tsx backend/bench/app-users/combine.ts <out dir> <results dir>…`.
 * Renders users vs p95 per tier and instance count, copies the plots of the
 * runs named in KEEP (comma-separated labels) and writes README.md with a row a run.
 */
interface Run {
  label: string;
  dir: string;
  config: { tier: string; users: number; instances: number; durationS: number; upstreamLatencyMs: number };
  machine: { loadAverageBefore: number[]; loadAverageAfter: number[] };
  questions: { asked: number; answered: number; failed: number; unfinished: number };
  signIns?: { failed: number };
  answerTime: { p50Ms: number | null; p95Ms: number | null; p99Ms: number | null };
  timeToFirstWord: { p95Ms: number | null };
  ownOverhead: { p95Ms: number | null };
  upstream: { accepted: number; rateLimited429: number };
  quota: { bindingLimit: string; bindingShareMean: number | null; bindingShareMax: number | null };
  capacityRule: { predictedUsersHeld: number; missShare: number; questionsPerUserPerMinute: number };
  instances: { cpuSeconds: number; cpuSecondsPer1000Requests: number | null; peakRssMb: number | null }[];
  redis: { perHttpRequest: number | null };
  loadGenerator: { eventLoopLagP99Ms: number }[];
  held: boolean;
}

const [out, ...sources] = process.argv.slice(2);
if (!out || sources.length === 0) {
  throw new Error('usage: combine.ts <out dir> <results dir>…');
}
const keep = new Set((process.env.KEEP ?? '').split(',').filter(Boolean));
mkdirSync(out, { recursive: true });
const runs: Run[] = sources.flatMap((source) =>
  readdirSync(source, { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && existsSync(join(source, entry.name, 'run.json')))
    .map((entry) => ({
      ...(JSON.parse(readFileSync(join(source, entry.name, 'run.json'), 'utf8')) as Run),
      dir: join(source, entry.name),
    })),
);
runs.sort(
  (a, b) =>
    a.config.tier.localeCompare(b.config.tier) ||
    a.config.instances - b.config.instances ||
    a.config.users - b.config.users,
);
for (const tier of new Set(runs.map((run) => run.config.tier))) {
  const points: SweepPoint[] = runs
    .filter((run) => run.config.tier === tier)
    .map((run) => ({
      users: run.config.users,
      instances: run.config.instances,
      p95Ms: run.answerTime.p95Ms ?? 0,
      held: run.held,
    }));
  await renderPng(
    sweepSpec(
      `Users vs answer time p95, ${tier} tier (dashed: 5 s; goal on the paid tier: 2 s)`,
      points,
      tier === 'paid' ? 2000 : 5000,
    ),
    join(out, `users-vs-p95-${tier}.png`),
  );
}
const kept: string[] = [];
for (const run of runs.filter((candidate) => keep.has(candidate.label))) {
  for (const plot of ['answer-cdf', 'timeline', 'quota']) {
    copyFileSync(join(run.dir, `${plot}.png`), join(out, `${run.label}-${plot}.png`));
  }
  copyFileSync(join(run.dir, 'summary.md'), join(out, `${run.label}-summary.md`));
  kept.push(run.label);
}
const percent = (value: number | null) => (value === null ? '–' : `${round(value * 100)}%`);
writeFileSync(
  join(out, 'README.md'),
  `# app-users: every run

${runs.length} runs of \`make bench SCENARIO=app-users\` on ${cpus().length} × ${cpus()[0]?.model ?? 'CPU'} shared by the stack, the load generator and other work (load averages per run below); how they were made and what they mean: the README's Capacity section. Held: p95 < 5 s, no question or sign-in failed, none unfinished, no upstream 429. Columns with a value per instance (CPU, RSS) list the instances in order.

${table(
  [
    'run',
    'users',
    'inst.',
    'asked',
    'answered',
    'failed (sign-ins)',
    'unfinished',
    'p50 / p95 / p99 ms',
    'first word p95 ms',
    'our overhead p95 ms',
    'upstream calls (429s)',
    'quota use mean / max',
    'rule predicts',
    'CPU s / 1,000 req.',
    'peak RSS MB',
    'Redis cmds / req.',
    'load gen. lag p99 ms',
    'load avg before → after',
    'held',
  ],
  runs.map((run) => [
    run.label,
    run.config.users,
    run.config.instances,
    run.questions.asked,
    run.questions.answered,
    `${run.questions.failed} (${run.signIns?.failed ?? '–'})`,
    run.questions.unfinished,
    `${run.answerTime.p50Ms} / ${run.answerTime.p95Ms} / ${run.answerTime.p99Ms}`,
    run.timeToFirstWord.p95Ms,
    run.ownOverhead.p95Ms,
    `${run.upstream.accepted} (${run.upstream.rateLimited429})`,
    `${percent(run.quota.bindingShareMean)} / ${percent(run.quota.bindingShareMax)} (${run.quota.bindingLimit})`,
    run.capacityRule.predictedUsersHeld,
    run.instances.map((i) => i.cpuSecondsPer1000Requests).join(', '),
    run.instances.map((i) => i.peakRssMb).join(', '),
    run.redis.perHttpRequest,
    run.loadGenerator.map((g) => g.eventLoopLagP99Ms).join(', '),
    `${run.machine.loadAverageBefore[0]} → ${run.machine.loadAverageAfter[0]}`,
    run.held ? 'yes' : 'no',
  ]),
)}

${[...new Set(runs.map((run) => run.config.tier))].map((tier) => `![users vs p95, ${tier}](users-vs-p95-${tier}.png)`).join('\n')}

${kept.map((label) => `## ${label}\n\n[summary](${label}-summary.md)\n\n![answer-time CDF](${label}-answer-cdf.png)\n![over the run](${label}-timeline.png)\n![quota use](${label}-quota.png)\n`).join('\n')}
`,
);
process.stdout.write(`${out}: ${runs.length} runs, kept the plots of ${kept.join(', ') || 'none'}\n`);
