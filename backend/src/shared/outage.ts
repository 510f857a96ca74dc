/** Failures and successes of one dependency, as they come. */
export interface OutageReporter {
  failed(error: unknown): void;
  succeeded(): void;
}

/**
 * The one "report an outage once" of the project: `started` on the first
 * failure after a success (or at first), `ended` on the first success after
 * it, nothing in between however many requests fail or reconnects are tried.
 */
export function createOutageReporter(report: { started(error: unknown): void; ended(): void }): OutageReporter {
  let down = false;
  return {
    failed(error) {
      if (!down) {
        down = true;
        report.started(error);
      }
    },
    succeeded() {
      if (down) {
        down = false;
        report.ended();
      }
    },
  };
}
