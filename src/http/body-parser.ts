// Parses request bodies (JSON, NPZ, multipart) in worker threads, so that no body of any size the limits
// allow blocks the event loop: JSON.parse of a 60 MB body, an archive's inflation or a form of many
// parts would each stall every other request for seconds on the main thread.
//
// Why JSON.parse in a worker rather than a streaming parser on the main thread: a streaming parser in
// JavaScript keeps the loop responsive but spends about ten times the CPU of the native parser, on the
// thread that serves everyone; in a worker the native parser runs at full speed and the loop only
// hands the body over and takes typed arrays back (both moved, not copied).
import os from 'node:os';
import { Piscina } from 'piscina';
import { FqError } from '../errors.ts';
import { workerExecArgv } from '../worker-exec-argv.ts';
import type { ImageBody, ImageLimits, TokenBody, TokenLimits } from './body-parsing.ts';
import type { BodyReply, BodyTask } from './body-worker.ts';

export type { ImageBody, ImageLimits, TokenBody, TokenLimits } from './body-parsing.ts';

/** Each call takes `bytes`' whole buffer (it moves to a worker thread, uncopied): it must be the caller's alone. */
export interface BodyParsing {
  tokens(bytes: Uint8Array, format: 'json' | 'npz', limits: TokenLimits): Promise<TokenBody>;
  images(bytes: Uint8Array, format: 'json' | 'multipart', contentType: string, limits: ImageLimits): Promise<ImageBody>;
}

export interface BodyParser extends BodyParsing {
  close(): Promise<void>;
}

export interface BodyParserOptions {
  /** FQ_MAX_BODY_BYTES: sizes the workers' heaps. */
  maxBodyBytes: number;
  /** Worker threads; default: two, or one on a single core. */
  threads?: number;
}

const WORKER_URL = new URL('./body-worker.ts', import.meta.url);

export function createBodyParser(options: BodyParserOptions): BodyParser {
  const threads = options.threads ?? Math.min(2, os.availableParallelism());
  // Room for the largest legitimate body parsed (a 64 MiB JSON of base64 images is ~64 MB of strings);
  // a hostile one that needs more (tens of millions of tiny objects) ends its worker, not the process.
  const heapMb = Math.max(512, Math.ceil((8 * options.maxBodyBytes) / 2 ** 20));
  const pool = new Piscina<BodyTask, BodyReply>({
    filename: WORKER_URL.href,
    minThreads: 1,
    maxThreads: threads,
    idleTimeout: 60_000, // a second thread after a burst leaves after a minute idle, and its heap with it
    resourceLimits: { maxOldGenerationSizeMb: heapMb },
    execArgv: workerExecArgv(),
  });
  let closed = false;

  async function run(task: BodyTask): Promise<BodyReply & { ok: true }> {
    if (closed) throw new FqError('unavailable', 'the service is shutting down');
    let reply: BodyReply;
    try {
      reply = await pool.run(task, { transferList: [task.bytes.buffer as ArrayBuffer] });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ERR_WORKER_OUT_OF_MEMORY') {
        throw new FqError('too_large', `the body needs more than the ${heapMb} MB a body may take to parse`, { cause: err });
      }
      throw new FqError('internal', `parsing the body failed: ${(err as Error).message}`, { cause: err });
    }
    if (!reply.ok) throw new FqError(reply.kind, reply.message, { item: reply.item, fields: reply.fields });
    return reply;
  }

  return {
    async tokens(bytes, format, limits) {
      return (await run({ kind: 'tokens', format, bytes, limits })).tokens!;
    },
    async images(bytes, format, contentType, limits) {
      return (await run({ kind: 'images', format, bytes, contentType, limits })).images!;
    },
    async close() {
      closed = true;
      await pool.close();
    },
  };
}
