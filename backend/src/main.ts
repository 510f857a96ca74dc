import { type Config, ConfigError, loadConfig } from './config.js';
import { createRuntime } from './runtime.js';
import { createLogger } from './telemetry/logger.js';

function readConfig(): Config {
  try {
    return loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.problems.join('\n')}\n`);
      process.exit(1);
    }
    throw error;
  }
}

const config = readConfig();
const logger = createLogger({ level: config.LOG_LEVEL, instanceId: config.INSTANCE_ID });
const runtime = await createRuntime(config, logger);
await runtime.listen();

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    logger.info({ signal }, 'shutdown requested');
    const forceExit = setTimeout(() => {
      logger.error('shutdown timed out; exiting');
      process.exit(1);
    }, config.SHUTDOWN_TIMEOUT_MS);
    forceExit.unref();
    void runtime.shutdown().then(() => process.exit(0));
  });
}
