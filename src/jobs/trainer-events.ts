// Parses the trainer's stdout lines: one JSON object per line with `event` and `time` (fqgan/events.py).
export interface TrainerEvent {
  type: string;
  /** When the trainer wrote it; the service's clock for lines without a time. */
  time: Date;
  /** Every field except `event` and `time`. */
  data: Record<string, unknown>;
}

/** A line that is not an event (a stray print) becomes a `log` event rather than being lost. */
export function parseTrainerLine(line: string): TrainerEvent | undefined {
  const text = line.trim();
  if (!text) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { type: 'log', time: new Date(), data: { line: text } };
  }
  if (typeof value !== 'object' || value === null || typeof (value as { event?: unknown }).event !== 'string') {
    return { type: 'log', time: new Date(), data: { line: text } };
  }
  const { event, time, ...data } = value as { event: string; time?: unknown } & Record<string, unknown>;
  const at = typeof time === 'number' && Number.isFinite(time) ? new Date(time * 1000) : new Date();
  return { type: event, time: at, data };
}

export const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
export const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
