/** Every failure the client reports: the backend's error code, or one of its own (network, timeout, aborted). */
export class FocusChatError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status?: number,
    readonly jobId?: string,
  ) {
    super(message);
    this.name = 'FocusChatError';
  }
}

/** The caller's signal aborted the call. */
export const cancelled = (jobId?: string): FocusChatError =>
  new FocusChatError('aborted', 'The request was cancelled.', undefined, jobId);
