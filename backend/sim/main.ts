import { startGroqSimulator } from './groq-simulator.js';

/**
 * Runs the Groq simulator as its own process (the local stack, benchmarks).
 * SIM_PORT, SIM_LATENCY_MS, SIM_JITTER_MS, SIM_RPM, SIM_TPM, SIM_LABEL.
 */
const number = (name: string, fallback: number) => {
  const value = Number(process.env[name] ?? fallback);
  if (!Number.isFinite(value) || value < 0) {
    process.stderr.write(`${name}: expected a non-negative number, got ${process.env[name]}\n`);
    process.exit(1);
  }
  return value;
};

const simulator = await startGroqSimulator(
  {
    latencyMs: number('SIM_LATENCY_MS', 40),
    jitterMs: number('SIM_JITTER_MS', 0),
    rpm: number('SIM_RPM', 0),
    tpm: number('SIM_TPM', 0),
    label: process.env.SIM_LABEL ?? 'sim',
  },
  { port: number('SIM_PORT', 8090), host: process.env.SIM_HOST ?? '127.0.0.1' },
);
process.stdout.write(`${JSON.stringify({ level: 'info', msg: 'groq simulator listening', url: simulator.url })}\n`);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    void simulator.close().then(() => process.exit(0));
  });
}
