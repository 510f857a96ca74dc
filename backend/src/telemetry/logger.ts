import { type DestinationStream, type Logger, pino } from 'pino';
import { currentRequestId } from './log-context.js';

export type { Logger };

/**
 * Paths never written to a log. Message text is never passed to the logger in
 * the first place; this list is the second line of defence for secrets.
 */
const REDACTED_PATHS = [
  'apiKey',
  '*.apiKey',
  'authorization',
  '*.authorization',
  'headers.authorization',
  '*.headers.authorization',
  'headers.cookie',
  '*.headers.cookie',
  'message',
  'messages',
  '*.messages',
  'history',
  '*.history',
];

/**
 * Every line logged during a request carries its id, whichever module logs it.
 * A fresh object each time: pino merges the line's own fields into it.
 */
function requestIdMixin(): { requestId?: string } {
  const requestId = currentRequestId();
  return requestId === undefined ? {} : { requestId };
}

export function createLogger(options: { level: string; instanceId: string }, destination?: DestinationStream): Logger {
  return pino(
    {
      level: options.level,
      base: { instance: options.instanceId },
      // A field a call passes itself (a job's requestId logged from outside the request) wins over the mixin's.
      mixin: requestIdMixin,
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
}
