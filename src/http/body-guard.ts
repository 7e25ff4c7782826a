// Request bodies under three limits: its size (413), the bytes of all bodies held at once (503 with
// Retry-After, like the decoded-pixel budget), and how long a body may stop arriving (408). Without the
// last two, twenty clients that send 63 of a declared 64 MiB and stall hold 1.3 GB until Node's
// 300-second request timeout.
//
// Bodies are read from Node's request stream directly (readBody), one copy per chunk into one buffer:
// the Fetch API's path (a web stream over the Node stream, then arrayBuffer() gathering the chunks and
// copying them twice) cost a 64 MiB body ~300 ms of the event loop's time. Other readers (a JSON
// validator) still get the body as a web stream, under the same limits.
import type { IncomingMessage } from 'node:http';
import type { Context, MiddlewareHandler } from 'hono';
import { FqError } from '../errors.ts';
import { bodyBytesInFlight } from '../metrics.ts';
import { handleError } from './problem.ts';

export interface BodyGuardOptions {
  /** FQ_MAX_BODY_BYTES: one body's limit. */
  maxBodyBytes: number;
  /** FQ_MAX_BODY_BYTES_IN_FLIGHT: bytes of all bodies being received or held by their requests. */
  maxBytesInFlight: number;
  /** FQ_BODY_IDLE_TIMEOUT_MS: longest wait for the next bytes of a body. */
  idleTimeoutMs: number;
}

/** Bytes of request bodies held at once, across connections; a request takes its share before it reads. */
export class ByteBudget {
  private held = 0;

  constructor(readonly limit: number) {}

  tryTake(bytes: number): boolean {
    if (this.held + bytes > this.limit) return false;
    this.held += bytes;
    bodyBytesInFlight.set(this.held);
    return true;
  }

  give(bytes: number): void {
    this.held -= bytes;
    bodyBytesInFlight.set(this.held);
  }
}

type ChunkSource = () => Promise<Uint8Array | undefined>;

/** One request's body, read under the limits: whole into one buffer, or as a web stream. */
class GuardedBody {
  /** True once the body failed (too large, no room, stalled): the connection cannot be reused. */
  broken = false;
  received = 0;

  constructor(
    private readonly next: ChunkSource,
    readonly declared: number | undefined,
    private readonly options: BodyGuardOptions,
    private readonly take: (bytes: number) => boolean,
    private readonly overloaded: () => FqError,
  ) {}

  /** The next chunk, or undefined at the end; a stall, an oversize or no room in the budget rejects. */
  async chunk(): Promise<Uint8Array | undefined> {
    let timer: NodeJS.Timeout | undefined;
    const idle = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new FqError('request_timeout', `the body stopped arriving: no bytes for ${this.options.idleTimeoutMs} ms (FQ_BODY_IDLE_TIMEOUT_MS)`)),
        this.options.idleTimeoutMs,
      );
    });
    try {
      const value = await Promise.race([this.next(), idle]);
      if (value === undefined) return undefined;
      this.received += value.length;
      if (this.received > this.options.maxBodyBytes) throw new FqError('too_large', `the body is larger than ${this.options.maxBodyBytes} bytes`);
      // A body of unknown length takes its share as it arrives.
      if (this.declared === undefined && !this.take(value.length)) throw this.overloaded();
      return value;
    } catch (err) {
      this.broken = true;
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  /** The whole body in one buffer of its own (exactly the declared length, or room for the limit: untouched pages cost nothing). */
  async readAll(): Promise<Uint8Array> {
    const out = new Uint8Array(this.declared ?? this.options.maxBodyBytes);
    let filled = 0;
    for (let value = await this.chunk(); value; value = await this.chunk()) {
      out.set(value, filled); // the checks in chunk() keep this in bounds
      filled += value.length;
    }
    return out.subarray(0, filled);
  }

  stream(): ReadableStream<Uint8Array> {
    return new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        try {
          const value = await this.chunk();
          if (value) controller.enqueue(value);
          else controller.close();
        } catch (err) {
          controller.error(err);
        }
      },
    }, { highWaterMark: 0 }); // nothing is read until someone reads: readAll() may be the reader instead
  }
}

const guardedBodies = new WeakMap<Request, GuardedBody>();

/**
 * The request's body in one buffer, read under the guard's limits. The buffer is the caller's alone
 * (it may be moved to a worker thread). Without the guard (a route tested on its own), the body as is.
 */
export async function readBody(c: Context): Promise<Uint8Array> {
  const guarded = guardedBodies.get(c.req.raw);
  if (guarded) return guarded.readAll();
  return new Uint8Array(await c.req.arrayBuffer());
}

function declaredLength(request: Request): number | undefined {
  if (request.headers.has('transfer-encoding')) return undefined;
  const value = request.headers.get('content-length');
  return value === null ? undefined : Number(value);
}

/** Chunks straight from Node's request stream (under @hono/node-server), else from the Fetch body. */
function chunkSource(c: Context, incoming: IncomingMessage | undefined): ChunkSource {
  const raw = c.req.raw;
  let iterator: AsyncIterator<Uint8Array> | ReadableStreamDefaultReader<Uint8Array> | undefined;
  return async () => {
    // Opened at the first read: a body nobody reads is left to the server's own drain.
    iterator ??= incoming ? (incoming[Symbol.asyncIterator]() as AsyncIterator<Uint8Array>) : raw.body!.getReader();
    const { done, value } = 'read' in iterator ? await iterator.read() : await iterator.next();
    return done ? undefined : value;
  };
}

export function bodyGuard(options: BodyGuardOptions): MiddlewareHandler {
  const budget = new ByteBudget(options.maxBytesInFlight);
  const overloaded = () =>
    new FqError('overloaded', `too many request bodies in flight (FQ_MAX_BODY_BYTES_IN_FLIGHT is ${options.maxBytesInFlight} bytes); retry shortly`, {
      retryAfterSeconds: 1,
    });

  return async function guardRequestBody(c, next) {
    const raw = c.req.raw;
    const declared = declaredLength(raw);
    const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
    // Over HTTP/1.1 a body has a length or a transfer encoding; a Request made in-process (app.request) may have neither.
    const hasBody = incoming ? declared !== 0 && (declared !== undefined || raw.headers.has('transfer-encoding')) : raw.body !== null;
    if (!hasBody) return next();
    // Refused before a byte is read; the connection closes, since its unread body cannot be skipped cheaply.
    const refuse = (err: FqError) => {
      const res = handleError(err, c);
      res.headers.set('connection', 'close');
      return res;
    };
    if (declared !== undefined && declared > options.maxBodyBytes) return refuse(new FqError('too_large', `the body is larger than ${options.maxBodyBytes} bytes`));
    let held = 0;
    if (declared !== undefined) {
      if (!budget.tryTake(declared)) return refuse(overloaded());
      held = declared;
    }
    const take = (bytes: number) => {
      if (!budget.tryTake(bytes)) return false;
      held += bytes;
      return true;
    };
    const body = new GuardedBody(chunkSource(c, incoming), declared, options, take, overloaded);
    // Other readers of the body (c.req.json(), the drain after an early answer) see it through the same limits.
    const guarded = new Request(raw.url, { method: raw.method, headers: raw.headers, body: body.stream(), signal: raw.signal, duplex: 'half' } as RequestInit);
    guardedBodies.set(guarded, body);
    c.req.raw = guarded;
    try {
      await next();
    } finally {
      budget.give(held);
      if (body.broken) c.header('connection', 'close'); // the rest of the body is not coming or not wanted
    }
  };
}
