import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/**
 * The layers of backend/src, top first: a module may import its own folder
 * and any layer below its own, never one above it nor a neighbour on the same
 * row (neighbours that need each other belong on different rows). A folder is
 * a layer; so is each file directly under backend/src.
 *
 * Why this order, where it is not obvious:
 * - queue sits above chat: its worker runs the chat service on a job.
 * - account, cache, safety and usage sit above llm and auth: they use the
 *   completion types of llm/types.ts and the token helpers of auth.
 * - db sits above telemetry, telemetry above redis: PostgreSQL code reports
 *   its outages through telemetry's tracker, and the cluster-wide stats live
 *   in Redis; redis itself takes only pino's Logger type.
 * - config, errors, shared: leaves; config validates with its own parsers;
 *   shared/ holds the few helpers the browser client uses too (no Node API).
 * - client/ (shipped to the browser) is apart: it may import the server's
 *   types (`import type`, erased by the build) and shared/, no other code.
 */
const LAYERS: readonly (readonly string[])[] = [
  ['main'],
  ['runtime'],
  ['app'],
  ['routes'],
  ['http'],
  ['queue'],
  ['chat'],
  ['account', 'cache', 'safety', 'usage'],
  ['llm', 'auth'],
  ['db'],
  ['telemetry'],
  ['redis'],
  ['config', 'errors', 'shared'],
];
const CLIENT = 'client';
/** The one layer whose code the client may bundle. */
const SHARED_WITH_CLIENT = 'shared';

/**
 * Imports of code outside backend/src allowed anyway, each with its reason.
 * The bundled simulator: runtime.ts loads it with a dynamic import() only
 * when no upstream is configured and ALLOW_EMBEDDED_SIMULATOR permits it, so
 * production code never loads it otherwise; its type import is erased.
 */
const OUTSIDE_SRC_ALLOWED: readonly { from: string; to: string; kinds: readonly ImportKind[] }[] = [
  { from: 'runtime.ts', to: '../sim/groq-simulator.ts', kinds: ['dynamic', 'type'] },
];

type ImportKind = 'value' | 'type' | 'dynamic';

interface FoundImport {
  specifier: string;
  kind: ImportKind;
}

/** Every import of a module: static (value or type-only), re-exports, side-effect imports, dynamic import(). */
function findImports(source: string): FoundImport[] {
  // Comments out first (a JSDoc example must not count); only those that start a line, so '**/*.ts' in a string stays.
  const code = source.replace(/^\s*\/\*[\s\S]*?\*\//gm, '').replace(/^\s*\/\/.*$/gm, '');
  const found: FoundImport[] = [];
  for (const match of code.matchAll(/^\s*(import|export)\s+(type\s+)?([^;'"]*?)\s*from\s*['"]([^'"]+)['"]/gm)) {
    const clause = match[3] ?? '';
    const named = /^\{([\s\S]*)\}$/.exec(clause.trim());
    const everyNameTyped =
      named !== null &&
      (named[1] ?? '')
        .split(',')
        .map((name) => name.trim())
        .filter(Boolean)
        .every((name) => name.startsWith('type '));
    found.push({
      specifier: match[4] as string,
      kind: match[2] !== undefined || (everyNameTyped && (named?.[1] ?? '').trim() !== '') ? 'type' : 'value',
    });
  }
  for (const match of code.matchAll(/^\s*import\s*['"]([^'"]+)['"]/gm)) {
    found.push({ specifier: match[1] as string, kind: 'value' });
  }
  for (const match of code.matchAll(/\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)/g)) {
    found.push({ specifier: match[1] as string, kind: 'dynamic' });
  }
  return found;
}

const SRC = resolve(dirname(fileURLToPath(import.meta.url)), '../../src');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory()
      ? sourceFiles(join(dir, entry.name))
      : entry.name.endsWith('.ts')
        ? [relative(SRC, join(dir, entry.name))]
        : [],
  );
}

/** The layer of a path relative to backend/src: its folder, or for a file at the top, its name. */
const layerOf = (path: string) => (path.includes('/') ? (path.split('/')[0] as string) : path.replace(/\.ts$/, ''));

function rowOf(layer: string): number {
  return LAYERS.findIndex((row) => row.includes(layer));
}

/** Every import in backend/src that breaks the order above, as "file -> import (why)". */
function layerViolations(files: readonly { path: string; source: string }[]): string[] {
  const violations: string[] = [];
  for (const { path, source } of files) {
    const from = layerOf(path);
    if (from !== CLIENT && rowOf(from) === -1) {
      violations.push(`${path}: layer "${from}" is not in the LAYERS table`);
      continue;
    }
    for (const { specifier, kind } of findImports(source)) {
      if (!specifier.startsWith('.')) {
        continue;
      }
      const target = relative(SRC, resolve(SRC, dirname(path), specifier)).replace(/\.js$/, '.ts');
      const where = `${path} -> ${specifier} (${kind})`;
      if (target.startsWith('..')) {
        const allowed = OUTSIDE_SRC_ALLOWED.some(
          (rule) => rule.from === path && rule.to === target && rule.kinds.includes(kind),
        );
        if (!allowed) {
          violations.push(`${where}: production code imports from outside backend/src`);
        }
        continue;
      }
      const to = layerOf(target);
      if (to === from) {
        continue;
      }
      if (from === CLIENT) {
        if (kind !== 'type' && to !== SHARED_WITH_CLIENT) {
          violations.push(
            `${where}: the client may import the server's types (import type) and shared/, no other code`,
          );
        }
        continue;
      }
      if (to === CLIENT) {
        violations.push(`${where}: the server never imports the client`);
        continue;
      }
      const [fromRow, toRow] = [rowOf(from), rowOf(to)];
      if (toRow === -1) {
        violations.push(`${where}: layer "${to}" is not in the LAYERS table`);
      } else if (toRow < fromRow) {
        violations.push(`${where}: ${from} imports ${to}, a layer above it`);
      } else if (toRow === fromRow) {
        violations.push(`${where}: ${from} imports ${to}, its neighbour on the same row`);
      }
    }
  }
  return violations;
}

describe('layers', () => {
  const files = sourceFiles(SRC).map((path) => ({ path, source: readFileSync(join(SRC, path), 'utf8') }));

  it('finds every form of import', () => {
    const source = [
      "import { a, type B } from './a.js';",
      "import type { C } from '../c.js';",
      "import { type D, type E } from './d.js';",
      'import {',
      '  f,',
      '  g,',
      "} from './f.js';",
      "export { h } from './h.js';",
      "export type { I } from './i.js';",
      "import './side-effect.js';",
      "const j = await import('../j.js');",
      "/** import { k } from './k.js'; */",
      "// import { l } from './l.js';",
      "const glob = '**/*.ts';",
      "import { m } from './m.js';",
    ].join('\n');
    expect(findImports(source)).toEqual(
      expect.arrayContaining([
        { specifier: './a.js', kind: 'value' },
        { specifier: '../c.js', kind: 'type' },
        { specifier: './d.js', kind: 'type' },
        { specifier: './f.js', kind: 'value' },
        { specifier: './h.js', kind: 'value' },
        { specifier: './i.js', kind: 'type' },
        { specifier: './side-effect.js', kind: 'value' },
        { specifier: '../j.js', kind: 'dynamic' },
        { specifier: './m.js', kind: 'value' },
      ]),
    );
    expect(findImports(source)).toHaveLength(9);
  });

  it('reads the real tree (a broken reader would pass everything)', () => {
    expect(files.length).toBeGreaterThan(50);
    const runtime = files.find((file) => file.path === 'runtime.ts');
    expect(findImports(runtime?.source ?? '')).toContainEqual({
      specifier: '../sim/groq-simulator.js',
      kind: 'dynamic',
    });
  });

  it('flags an import up a layer, a neighbour, the simulator and client code', () => {
    expect(
      layerViolations([
        { path: 'redis/x.ts', source: "import { y } from '../queue/y.js';" },
        { path: 'llm/x.ts', source: "import type { Y } from '../auth/y.js';" },
        { path: 'chat/x.ts', source: "const sim = await import('../../sim/groq-simulator.js');" },
        {
          path: 'client/x.ts',
          source:
            "import { y } from '../chat/y.js';\nimport type { Z } from '../chat/z.js';\nimport { s } from '../shared/s.js';",
        },
        { path: 'http/x.ts', source: "import { y } from '../chat/y.js';" },
      ]),
    ).toEqual([
      'redis/x.ts -> ../queue/y.js (value): redis imports queue, a layer above it',
      'llm/x.ts -> ../auth/y.js (type): llm imports auth, its neighbour on the same row',
      'chat/x.ts -> ../../sim/groq-simulator.js (dynamic): production code imports from outside backend/src',
      "client/x.ts -> ../chat/y.js (value): the client may import the server's types (import type) and shared/, no other code",
    ]);
  });

  it('no module in backend/src imports from a layer above its own', () => {
    expect(layerViolations(files)).toEqual([]);
  });
});
