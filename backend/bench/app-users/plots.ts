import { writeFileSync } from 'node:fs';
import { Resvg } from '@resvg/resvg-js';
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';

/**
 * The benchmark's plots: Vega-Lite specs compiled to Vega, rendered to SVG
 * headless (no browser, no canvas) and rasterised to PNG by resvg.
 */
export async function renderPng(spec: TopLevelSpec, file: string): Promise<void> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  const svg = await view.toSVG(2);
  view.finalize();
  const png = new Resvg(svg, { background: 'white', font: { loadSystemFonts: true } }).render().asPng();
  writeFileSync(file, png);
}

const SCHEMA = 'https://vega.github.io/schema/vega-lite/v6.json';
const base = {
  $schema: SCHEMA,
  width: 640,
  height: 300,
  config: { font: 'DejaVu Sans', legend: { labelLimit: 400 } },
} as const;

export interface CdfPoint {
  via: string;
  ms: number;
  share: number;
}

export function cdfSpec(title: string, points: CdfPoint[]): TopLevelSpec {
  return {
    ...base,
    title,
    data: { values: points },
    mark: { type: 'line', interpolate: 'step-after' },
    encoding: {
      x: { field: 'ms', type: 'quantitative', title: 'answer time, ms (log)', scale: { type: 'log' } },
      y: { field: 'share', type: 'quantitative', title: 'share of answered questions', axis: { format: '%' } },
      color: { field: 'via', type: 'nominal', title: null },
    },
  } as TopLevelSpec;
}

export interface TimelinePoint {
  /** s since the start, bucket start. */
  t: number;
  p50Ms: number | null;
  p95Ms: number | null;
  answersPerSecond: number;
  askedPerSecond: number;
}

export function timelineSpec(title: string, points: TimelinePoint[]): TopLevelSpec {
  const long = points.flatMap((point) => [
    { t: point.t, series: 'answer time p50', ms: point.p50Ms },
    { t: point.t, series: 'answer time p95', ms: point.p95Ms },
  ]);
  const rate = points.flatMap((point) => [
    { t: point.t, series: 'answered / s', rate: point.answersPerSecond },
    { t: point.t, series: 'asked / s', rate: point.askedPerSecond },
  ]);
  return {
    $schema: SCHEMA,
    title,
    config: base.config,
    vconcat: [
      {
        width: 640,
        height: 220,
        data: { values: long.filter((row) => row.ms !== null) },
        mark: { type: 'line', point: true },
        encoding: {
          x: { field: 't', type: 'quantitative', title: 'time into the run, s (by when the question was asked)' },
          y: { field: 'ms', type: 'quantitative', title: 'answer time, ms' },
          color: { field: 'series', type: 'nominal', title: null },
        },
      },
      {
        width: 640,
        height: 160,
        data: { values: rate },
        mark: { type: 'line' },
        encoding: {
          x: { field: 't', type: 'quantitative', title: 'time into the run, s' },
          y: { field: 'rate', type: 'quantitative', title: 'questions / s' },
          color: { field: 'series', type: 'nominal', title: null },
        },
      },
    ],
  } as TopLevelSpec;
}

export interface QuotaPoint {
  t: number;
  /** Accepted upstream calls and their tokens in the trailing 60 s, as a share of the limit. */
  requestsShare: number | null;
  tokensShare: number | null;
}

export function quotaSpec(title: string, points: QuotaPoint[], limits: { rpm: number; tpm: number }): TopLevelSpec {
  const long = points.flatMap((point) => [
    { t: point.t, series: `requests (limit ${limits.rpm}/min)`, share: point.requestsShare },
    { t: point.t, series: `tokens (limit ${limits.tpm}/min)`, share: point.tokensShare },
  ]);
  return {
    ...base,
    title,
    layer: [
      {
        data: { values: long.filter((row) => row.share !== null) },
        mark: { type: 'line' },
        encoding: {
          x: { field: 't', type: 'quantitative', title: 'time into the run, s' },
          y: {
            field: 'share',
            type: 'quantitative',
            title: 'upstream use in the trailing 60 s, share of the limit',
            axis: { format: '%' },
          },
          color: { field: 'series', type: 'nominal', title: null },
        },
      },
      {
        data: { values: [{ y: 1 }, { y: 0.95 }] },
        mark: { type: 'rule', strokeDash: [4, 4], color: 'gray' },
        encoding: { y: { field: 'y', type: 'quantitative' } },
      },
    ],
  } as TopLevelSpec;
}

export interface SweepPoint {
  users: number;
  instances: number;
  p95Ms: number;
  held: boolean;
}

export function sweepSpec(title: string, points: SweepPoint[], limitMs: number): TopLevelSpec {
  return {
    ...base,
    title,
    layer: [
      {
        data: { values: points.map((point) => ({ ...point, instances: `${point.instances} instance(s)` })) },
        mark: { type: 'line', point: true },
        encoding: {
          x: { field: 'users', type: 'quantitative', title: 'simulated users' },
          y: { field: 'p95Ms', type: 'quantitative', title: 'answer time p95, ms (log)', scale: { type: 'log' } },
          color: { field: 'instances', type: 'nominal', title: null },
        },
      },
      {
        data: { values: [{ y: limitMs }] },
        mark: { type: 'rule', strokeDash: [4, 4], color: 'gray' },
        encoding: { y: { field: 'y', type: 'quantitative' } },
      },
    ],
  } as TopLevelSpec;
}
