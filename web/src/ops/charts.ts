import uPlot from 'uplot';

/**
 * Small live charts (uPlot, canvas): a rolling window of samples, redrawn on
 * every poll and resized with their box. Colours come from the page's theme.
 */
export interface SeriesSpec {
  label: string;
  /** A CSS custom property of the theme, e.g. --chart-1. */
  color: string;
  dash?: number[];
}

const HEIGHT = 200;
const clock = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const clockSeconds = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' });

function themeColor(name: string): string {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || '#888';
}

export class LiveChart {
  private plot: uPlot;
  private readonly data: number[][];

  constructor(
    private readonly container: HTMLElement,
    private readonly series: SeriesSpec[],
    private readonly capacity: number,
    private readonly windowSeconds: number,
  ) {
    this.data = [[], ...series.map(() => [])];
    this.plot = this.draw();
    new ResizeObserver(() => {
      this.plot.setSize({ width: Math.max(240, container.clientWidth), height: HEIGHT });
    }).observe(container);
    // Canvas keeps the colours it was drawn with: when the system switches between light and
    // dark, the chart is drawn again from the theme, with the samples it holds.
    matchMedia('(prefers-color-scheme: dark)').addEventListener('change', () => {
      this.plot.destroy();
      this.plot = this.draw();
    });
  }

  private draw(): uPlot {
    const { container, windowSeconds } = this;
    const axisColor = themeColor('--muted');
    const gridColor = themeColor('--border');
    const axis = { stroke: axisColor, grid: { stroke: gridColor, width: 1 }, ticks: { stroke: gridColor, width: 1 } };
    const plot = new uPlot(
      {
        width: Math.max(240, container.clientWidth),
        height: HEIGHT,
        // Draws are not animated anyway; no cursor sync or zoom needed on a live view.
        cursor: { drag: { x: false, y: false } },
        // The legend names the lines; the figures themselves are in the tiles above.
        legend: { live: false },
        scales: {
          // A rolling window ending at the newest sample, also when there is only one.
          x: { time: true, range: (_u, _min, max) => [max - windowSeconds, max] },
          y: { range: (_u, min, max) => [0, Math.max(1, max * 1.15, min)] },
        },
        axes: [
          {
            ...axis,
            space: 90,
            // Clock time only: the window is five minutes (seconds when the ticks are closer than a minute).
            values: (_u, ticks) => {
              const step = (ticks[1] ?? 0) - (ticks[0] ?? 0);
              const format = step > 0 && step < 60 ? clockSeconds : clock;
              return ticks.map((tick) => format.format(new Date(tick * 1000)));
            },
          },
          { ...axis, size: 56 },
        ],
        series: [
          {},
          ...this.series.map((spec) => ({
            label: spec.label,
            stroke: themeColor(spec.color),
            width: 2,
            ...(spec.dash ? { dash: spec.dash } : {}),
            spanGaps: true,
          })),
        ],
      },
      this.data as uPlot.AlignedData,
      container,
    );
    // The canvas is a picture of figures that the page also gives as text.
    for (const canvas of container.querySelectorAll('canvas')) {
      canvas.setAttribute('aria-hidden', 'true');
    }
    return plot;
  }

  /** One sample: time in seconds, one value per series (null for a gap). */
  push(time: number, values: (number | null)[]): void {
    this.data[0]?.push(time);
    values.forEach((value, index) => {
      this.data[index + 1]?.push(value as number);
    });
    if ((this.data[0]?.length ?? 0) > this.capacity) {
      for (const column of this.data) {
        column.shift();
      }
    }
    this.plot.setData(this.data as uPlot.AlignedData);
  }
}
