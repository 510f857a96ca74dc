import { CircuitState, ConsecutiveBreaker, circuitBreaker, handleWhen, isBrokenCircuitError } from 'cockatiel';
import type { Logger } from '../telemetry/logger.js';
import type { Metrics } from '../telemetry/metrics.js';
import { UpstreamError } from './upstream-error.js';

export type BreakerState = 'closed' | 'half_open' | 'open';

/**
 * A circuit breaker for one provider on this instance (cockatiel). After
 * `failureThreshold` consecutive failures the provider is skipped for
 * `cooldownMs`; then one call probes it: success closes the circuit, failure
 * opens it again. Only signs of an unhealthy upstream count (timeouts, 5xx,
 * unreachable): a 429 is the quota governor's business, a 4xx the request's.
 */
export interface ProviderBreaker {
  readonly state: BreakerState;
  /** True while calls should go elsewhere: cooling down, or a probe is in flight. */
  readonly skipping: boolean;
  /** Until the next probe may run (0 when not skipping). */
  retryAfterMs(): number;
  /** Runs one call through the breaker; throws a cockatiel BrokenCircuitError when open. */
  execute<T>(call: () => Promise<T>): Promise<T>;
}

export interface ProviderBreakerOptions {
  provider: string;
  failureThreshold: number;
  cooldownMs: number;
  metrics: Metrics;
  logger: Logger;
}

const GAUGE_VALUE: Record<BreakerState, number> = { closed: 0, half_open: 1, open: 2 };

export const isCircuitOpenError = isBrokenCircuitError;

export function createProviderBreaker(options: ProviderBreakerOptions): ProviderBreaker {
  const { provider, cooldownMs, metrics } = options;
  const log = options.logger.child({ component: 'circuit-breaker', provider });
  const policy = circuitBreaker(
    handleWhen((error) => error instanceof UpstreamError && (error.kind === 'timeout' || error.kind === 'unavailable')),
    { breaker: new ConsecutiveBreaker(options.failureThreshold), halfOpenAfter: cooldownMs },
  );
  let openedAt = 0;

  const stateOf = (state: CircuitState): BreakerState =>
    state === CircuitState.Closed ? 'closed' : state === CircuitState.HalfOpen ? 'half_open' : 'open';

  metrics.circuitState.set({ provider }, 0);
  policy.onBreak(() => {
    openedAt = Date.now();
    log.warn({ cooldownMs }, 'circuit opened: skipping provider');
  });
  policy.onHalfOpen(() => log.info('circuit half-open: probing provider'));
  policy.onReset(() => log.info('circuit closed: provider healthy again'));
  policy.onStateChange((state) => metrics.circuitState.set({ provider }, GAUGE_VALUE[stateOf(state)]));

  const cooling = () => Date.now() - openedAt < cooldownMs;

  return {
    get state() {
      return stateOf(policy.state);
    },
    get skipping() {
      const state = stateOf(policy.state);
      return state === 'half_open' || (state === 'open' && cooling());
    },
    retryAfterMs() {
      return stateOf(policy.state) === 'open' ? Math.max(0, openedAt + cooldownMs - Date.now()) : 0;
    },
    execute(call) {
      return policy.execute(() => call());
    },
  };
}
