import type { ClusterStats } from '../telemetry/cluster-stats.js';
import type { LlmProvider } from './types.js';

/**
 * Wraps one provider so that every answered call adds its tokens to the
 * cluster-wide window (/dashboard: tokens in the last minute against the
 * quota). It wraps the provider, not the gateway, so a call is counted once
 * however many requests share its answer.
 */
export function withUpstreamUsage(provider: LlmProvider, stats: ClusterStats): LlmProvider {
  return {
    name: provider.name,
    model: provider.model,
    async complete(request) {
      const completion = await provider.complete(request);
      stats.recordUpstream(provider.name, completion.usage.promptTokens + completion.usage.completionTokens);
      return completion;
    },
  };
}
