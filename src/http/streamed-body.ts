// A streamed response body (a ?format=npz archive) that reads its source only as fast as the client
// takes it, so that the source's producer (the decoder) stops when the socket stops draining, and that
// ends the connection when the client stops reading for FQ_WRITE_IDLE_TIMEOUT_MS: a client that never
// reads would otherwise hold the connection, and what is queued for it, for ever.
import type { ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import type { Context } from 'hono';
import { FqError } from '../errors.ts';
import { logger } from '../logger.ts';

export function streamedBody(c: Context, source: Readable, writeIdleTimeoutMs: number): ReadableStream<Uint8Array> {
  const chunks = source[Symbol.asyncIterator]() as AsyncIterator<Uint8Array>;
  // @hono/node-server's bindings: the Node response, whose socket is what stops draining.
  const outgoing = (c.env as { outgoing?: ServerResponse } | undefined)?.outgoing;
  let timer: NodeJS.Timeout | undefined;
  const stalled = () => {
    const err = new FqError('timeout', `the client read nothing for ${writeIdleTimeoutMs} ms (FQ_WRITE_IDLE_TIMEOUT_MS)`);
    logger.info({ requestId: c.get('requestId'), path: c.req.path, writeIdleTimeoutMs }, 'client stopped reading the response: connection closed');
    source.destroy(err);
    outgoing?.destroy(err);
  };
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        clearTimeout(timer); // the client took the last chunk: what comes next is the source's time, not the client's
        try {
          const { done, value } = await chunks.next();
          if (done) return controller.close();
          controller.enqueue(value);
          timer = setTimeout(stalled, writeIdleTimeoutMs);
        } catch (err) {
          controller.error(err);
        }
      },
      cancel(reason) {
        clearTimeout(timer);
        source.destroy(reason instanceof Error ? reason : undefined);
      },
    },
    { highWaterMark: 0 }, // read from the source only when the client's side asks
  );
}
