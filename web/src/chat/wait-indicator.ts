/**
 * The visible status line and its progress bar: thinking, the place in line
 * with an estimate (the bar fills as the estimate runs down and is refreshed by
 * every poll), and the countdown of a 429/503. Not a live region: the page
 * announces the few moments that matter itself.
 */
export class WaitIndicator {
  private timer: number | undefined;
  private startedAt = 0;
  private estimateEndsAt = 0;
  private stopCountdown: (() => void) | undefined;

  constructor(
    private readonly text: HTMLElement,
    private readonly bar: HTMLProgressElement,
  ) {}

  thinking(label: string): void {
    this.reset();
    this.text.textContent = label;
    this.startedAt = Date.now();
  }

  writing(label: string): void {
    this.stopTimer();
    this.bar.hidden = true;
    this.text.textContent = label;
  }

  note(label: string): void {
    this.reset();
    this.text.textContent = label;
  }

  /** A place in line (or "being written"), the estimate in seconds; the bar shows time waited against the estimate. */
  queued(label: string, estimatedSeconds: number): void {
    this.text.textContent = label;
    this.text.dataset.kind = 'queue';
    this.estimateEndsAt = Date.now() + Math.max(0.5, estimatedSeconds) * 1000;
    this.bar.hidden = false;
    this.bar.removeAttribute('aria-valuetext');
    this.render();
    if (this.timer === undefined) {
      this.timer = window.setInterval(() => this.render(), 250);
    }
  }

  /** Counts down `seconds` (the label says how many are left), then shows `after`; rejects if the signal aborts. */
  countdown(
    seconds: number,
    label: (left: number) => string,
    after: string,
    signal: AbortSignal | undefined,
  ): Promise<void> {
    this.reset();
    this.text.dataset.kind = 'countdown';
    this.bar.hidden = false;
    this.bar.max = seconds;
    this.bar.value = 0;
    let left = seconds;
    this.text.textContent = label(left);
    return new Promise((resolve, reject) => {
      const tick = window.setInterval(() => {
        left -= 1;
        this.bar.value = seconds - left;
        if (left > 0) {
          this.text.textContent = label(left);
          return;
        }
        finish();
        this.text.textContent = after;
        resolve();
      }, 1000);
      const onAbort = () => {
        finish();
        reject(new DOMException('The wait was cancelled.', 'AbortError'));
      };
      const finish = () => {
        window.clearInterval(tick);
        signal?.removeEventListener('abort', onAbort);
        this.stopCountdown = undefined;
        this.bar.hidden = true;
        this.bar.max = 100;
        delete this.text.dataset.kind;
      };
      this.stopCountdown = finish;
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  clear(): void {
    this.reset();
    this.text.textContent = '';
  }

  private render(): void {
    const now = Date.now();
    const waited = now - this.startedAt;
    const remaining = Math.max(250, this.estimateEndsAt - now);
    // Never full while still waiting: the last part of the bar is the answer itself.
    this.bar.value = Math.min(95, Math.round((100 * waited) / (waited + remaining)));
  }

  private stopTimer(): void {
    if (this.timer !== undefined) {
      window.clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  private reset(): void {
    this.stopTimer();
    this.stopCountdown?.();
    this.bar.hidden = true;
    this.bar.value = 0;
    delete this.text.dataset.kind;
  }
}
