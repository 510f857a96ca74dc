import { type DestinationStream, type Logger, pino } from 'pino';

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

export function createLogger(options: { level: string; instanceId: string }, destination?: DestinationStream): Logger {
  return pino(
    {
      level: options.level,
      base: { instance: options.instanceId },
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
}
