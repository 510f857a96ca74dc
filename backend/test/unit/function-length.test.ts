import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { parseSync, Visitor } from 'oxc-parser';
import { describe, expect, it } from 'vitest';

/**
 * No function in backend/src runs over about 60 lines (issue 16): a longer
 * one does several things and should be split into named steps. A function's
 * length is the span of its lines, the lines of functions nested in it
 * included (a long factory of closures is a long function). TypeScript 7 has
 * no JS API, so oxc-parser reads the sources.
 */
const MAX_LINES = 60;
const SRC = join(import.meta.dirname, '../../src');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      return sourceFiles(path);
    }
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts') ? [path] : [];
  });
}

interface LongFunction {
  /** File, first line and name. */
  where: string;
  lines: number;
}

function longFunctions(file: string, maxLines: number): LongFunction[] {
  const text = readFileSync(file, 'utf8');
  const parsed = parseSync(file, text);
  if (parsed.errors.length > 0) {
    throw new Error(`${file}: ${parsed.errors[0]?.message}`);
  }
  const lineStarts = [0];
  for (let index = text.indexOf('\n'); index >= 0; index = text.indexOf('\n', index + 1)) {
    lineStarts.push(index + 1);
  }
  const lineOf = (offset: number) => {
    let low = 0;
    let high = lineStarts.length - 1;
    while (low < high) {
      const middle = Math.ceil((low + high) / 2);
      if ((lineStarts[middle] as number) <= offset) {
        low = middle;
      } else {
        high = middle - 1;
      }
    }
    return low + 1;
  };
  const found: LongFunction[] = [];
  const measure = (node: { start: number; end: number; id?: { name: string } | null }) => {
    const first = lineOf(node.start);
    const lines = lineOf(node.end) - first + 1;
    if (lines > maxLines) {
      found.push({ where: `${relative(SRC, file)}:${first} ${node.id?.name ?? '(anonymous)'}`, lines });
    }
  };
  new Visitor({ FunctionDeclaration: measure, FunctionExpression: measure, ArrowFunctionExpression: measure }).visit(
    parsed.program,
  );
  return found;
}

describe('function length', () => {
  it('finds a long function (the check can fail)', () => {
    const long = longFunctions(join(SRC, 'llm/llm-gateway.ts'), 5);
    expect(long.some((item) => item.where.endsWith(' createLlmGateway'))).toBe(true);
  });

  it(`no function in backend/src is over ${MAX_LINES} lines`, () => {
    const long = sourceFiles(SRC).flatMap((file) => longFunctions(file, MAX_LINES));
    expect(long.map((item) => `${item.where}: ${item.lines} lines`)).toEqual([]);
  });
});
