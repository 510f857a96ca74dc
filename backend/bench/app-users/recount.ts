import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { spread } from './report.js';
import type { QuestionRecord } from './users.js';

/**
 * Figures recounted from a results folder's records.jsonl (runs written before
 * a figure changed): `node --import tsx backend/bench/app-users/recount.ts <results dir>`.
 * Prints per run: answer time, first word, and our overhead on streams (a hit's
 * first word; a miss's first word less the upstream latency in its run.json).
 */
const root = process.argv[2];
if (!root) {
  throw new Error('usage: recount.ts <results dir>');
}
for (const name of readdirSync(root, { withFileTypes: true }).filter((entry) => entry.isDirectory())) {
  const dir = join(root, name.name);
  const run = JSON.parse(readFileSync(join(dir, 'run.json'), 'utf8')) as { config: { upstreamLatencyMs: number } };
  const records = readFileSync(join(dir, 'records.jsonl'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as QuestionRecord);
  const streamed = records.filter((r) => r.outcome === 'answered' && r.via === 'stream' && !r.fellBack);
  const overhead = streamed
    .filter((r) => r.ttftMs !== undefined && !r.coalesced)
    .map((r) => (r.cached ? (r.ttftMs as number) : (r.ttftMs as number) - run.config.upstreamLatencyMs));
  process.stdout.write(
    `${JSON.stringify({
      run: name.name,
      answerTime: spread(records.filter((r) => r.outcome === 'answered').map((r) => r.ms)),
      ownOverhead: spread(overhead),
    })}\n`,
  );
}
