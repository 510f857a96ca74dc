import { afterAll, describe, expect, it } from 'vitest';
import { readRunState } from '../../../deploy/local/stack.js';
import { localStackEnv, runMake } from '../helpers/local-stack.js';

/**
 * A setting the instances refuse must stop `make up` at once, naming it,
 * rather than leave them in a crash loop under PM2.
 */

let env: Record<string, string>;

afterAll(async () => {
  await runMake(['down'], env).catch(() => undefined);
});

describe('make up with a bad backend setting', () => {
  it('fails at once, naming the variable, and starts nothing', async () => {
    env = await localStackEnv({ MAX_REQUESTS_PER_MINUTE: 'many' });
    const failure = await runMake(['up', 'N=2'], env, 30_000).then(
      () => undefined,
      (error: Error) => error.message,
    );
    expect(failure).toMatch(/^MAX_REQUESTS_PER_MINUTE: /m);
    expect(await readRunState(env)).toBeUndefined();
  });

  it('fails at once when PROMETHEUS_ENABLED=true but there is no Prometheus config, and starts nothing', async () => {
    const missing = await localStackEnv({ PROMETHEUS_ENABLED: 'true', PROMETHEUS_CONFIG_DIR: env.RUN_DIR as string });
    const failure = await runMake(['up', 'N=1'], missing, 30_000).then(
      () => undefined,
      (error: Error) => error.message,
    );
    expect(failure).toMatch(/PROMETHEUS_ENABLED=true, but .*(prometheus\.local\.yml does not exist|not installed)/);
    expect(await readRunState(missing)).toBeUndefined();
  });
});
