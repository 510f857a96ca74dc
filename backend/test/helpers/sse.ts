/** One server-sent event: its name (`message` when unnamed) and its data, parsed when JSON. */
export interface ServerEvent {
  event: string;
  data: string;
  json: unknown;
  /** ms since the reader started. */
  at: number;
}

/** Reads an event stream to its end (or until `stopAfter` says so), with each event's arrival time. */
export async function readEvents(
  response: Response,
  stopAfter: (event: ServerEvent) => boolean = () => false,
): Promise<ServerEvent[]> {
  const started = performance.now();
  const events: ServerEvent[] = [];
  const reader = (response.body as ReadableStream<Uint8Array>).getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  for (;;) {
    const { done, value } = await reader.read();
    if (done) {
      return events;
    }
    buffer += decoder.decode(value, { stream: true });
    let end = buffer.indexOf('\n\n');
    while (end >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      end = buffer.indexOf('\n\n');
      const lines = block.split('\n').filter((line) => !line.startsWith(':'));
      if (lines.length === 0) {
        continue;
      }
      const event = lines.find((line) => line.startsWith('event: '))?.slice(7) ?? 'message';
      const data = lines
        .filter((line) => line.startsWith('data: '))
        .map((line) => line.slice(6))
        .join('\n');
      let json: unknown;
      try {
        json = JSON.parse(data);
      } catch {
        json = undefined;
      }
      const parsed = { event, data, json, at: performance.now() - started };
      events.push(parsed);
      if (stopAfter(parsed)) {
        await reader.cancel();
        return events;
      }
    }
  }
}
