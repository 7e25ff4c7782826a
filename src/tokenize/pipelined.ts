// Runs an async step over a stream of items with a few in flight at once, yielding results in input order.
// Long decodes to an archive use it: the model stays busy while earlier results are written out, and
// memory holds at most `inFlight` results however long the stream is.

export async function* pipelined<T, R>(items: AsyncIterable<T> | Iterable<T>, step: (item: T) => Promise<R>, inFlight: number): AsyncGenerator<R> {
  const pending: Promise<R>[] = [];
  try {
    for await (const item of items) {
      const result = step(item);
      result.catch(() => {}); // awaited in order below; this only keeps an early failure from going unhandled
      pending.push(result);
      if (pending.length >= inFlight) yield await pending.shift()!;
    }
    while (pending.length > 0) yield await pending.shift()!;
  } finally {
    // On an early exit, let what is still running settle before the caller tears anything down.
    await Promise.allSettled(pending);
  }
}
