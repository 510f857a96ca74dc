import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * `make bench [SCENARIO=<name>]`: runs every scenario in scenarios/ (or the one
 * named), each in its own process, one after another so they do not share the CPU.
 */
const scenariosDir = fileURLToPath(new URL('./scenarios/', import.meta.url));
const available = readdirSync(scenariosDir)
  .filter((file) => file.endsWith('.ts'))
  .map((file) => file.slice(0, -'.ts'.length))
  .sort();

const wanted = process.argv[2];
if (wanted && !available.includes(wanted)) {
  process.stderr.write(`unknown scenario "${wanted}"; available: ${available.join(', ')}\n`);
  process.exit(2);
}

const failed: string[] = [];
for (const name of wanted ? [wanted] : available) {
  const code = await new Promise<number | null>((resolve) => {
    spawn(process.execPath, ['--import', 'tsx', join(scenariosDir, `${name}.ts`)], { stdio: 'inherit' }).once(
      'exit',
      resolve,
    );
  });
  if (code !== 0) {
    failed.push(name);
  }
}
if (failed.length > 0) {
  process.stderr.write(`failed: ${failed.join(', ')}\n`);
  process.exit(1);
}
