import type { AccountService } from '../account/account-service.js';
import type { ChatAnswer } from '../chat/chat-service.js';
import type { JobStatus } from '../queue/chat-queue.js';
import type { SafetyAnswer } from '../safety/types.js';

/**
 * The bodies the chat API answers with, as the browser client reads them
 * (it imports these types, so a change here fails its build, not its users).
 */

/** POST /api/chat, and a finished job's result: the answer, or the fixed answer to a message in crisis. */
export type ChatReply = ChatAnswer & {
  /** Present on the fixed answer to a message in crisis: show its resources (tel: links). */
  safety?: SafetyAnswer['safety'];
};

/** The 202 of POST /api/chat/queue. */
export interface QueuedJob {
  jobId: string;
  status: 'queued';
  position: number;
  estimatedTime: number;
  message: string;
}

/** GET /api/chat/status/:jobId; not_found also for someone else's or an expired job. */
export type JobStatusBody =
  | { status: 'completed'; result: ChatReply }
  | Exclude<JobStatus, { status: 'completed' }>
  | { status: 'not_found' };

/** A device account, as POST /api/auth/device answers it. */
export type DeviceAccount = Awaited<ReturnType<AccountService['signUp']>>;
