import type { JobStatusBody } from '../routes/responses.js';

export interface ChatTurn {
  role: 'user' | 'assistant';
  content: string;
}

export type JobStatus = JobStatusBody;
export type JobProgress = Extract<JobStatus, { status: 'processing' }>;

export interface SendOptions {
  history?: ChatTurn[];
  signal?: AbortSignal;
  /** Called on every poll while the job waits or runs: show the place in line. */
  onProgress?: (progress: JobProgress & { jobId: string }) => void;
}

export interface StreamOptions extends SendOptions {
  /** Each piece of the answer as it arrives. */
  onDelta?: (text: string) => void;
}

export type QueueOptions = Omit<SendOptions, 'onProgress'> & { idempotencyKey?: string };
export type WaitOptions = Omit<SendOptions, 'history'>;
