import { Redis } from 'ioredis';

/**
 * Counts the commands clients send to a Redis (MONITOR lines not from a
 * script), by name, minus the bench's own INFO: what a round trip costs,
 * where INFO's totals also count the commands scripts run.
 */
export async function watchCommandsSent(url: string) {
  const client = new Redis(url);
  const monitor = await client.monitor();
  const byCommand = new Map<string, number>();
  monitor.on('monitor', (_time: string, args: string[], source: string) => {
    const name = String(args[0]).toLowerCase();
    if (source !== 'lua' && name !== 'info') {
      byCommand.set(name, (byCommand.get(name) ?? 0) + 1);
    }
  });
  return {
    /** The counts since the last take, and a fresh start. */
    take() {
      const taken = Object.fromEntries(byCommand);
      byCommand.clear();
      return taken;
    },
    stop() {
      monitor.disconnect();
      client.disconnect();
    },
  };
}

export type CommandsSent = Awaited<ReturnType<typeof watchCommandsSent>>;
