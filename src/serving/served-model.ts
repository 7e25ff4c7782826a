// One servable model version: its backend behind an encode and a decode micro-batcher.
import { FqError } from '../errors.ts';
import { batchSize, droppedRequests, imagesProcessed, inferenceDuration, queueDepth } from '../metrics.ts';
import type { BackendHealth, BackendInfo, TokenBatch, InferenceBackend } from '../backends/backend.ts';
import { MicroBatcher, type Reservation, type SubmitOptions } from './batcher.ts';
import type { Manifest } from '../backends/manifest.ts';

export interface ModelRef {
  name: string;
  version: number;
  dir: string;
  manifest: Manifest;
}

/** The two queues of a served model. */
export type Operation = 'encode' | 'decode';

export interface BatchingOptions {
  maxBatch: number;
  batchWaitMs: number;
  maxQueue: number;
}

interface EncodePayload {
  images: Float32Array;
  count: number;
}

interface DecodePayload {
  tokens: TokenBatch;
  count: number;
  grid: readonly [number, number];
  mask: Float32Array;
}

type Chunk = Float32Array | Uint8Array | Int32Array;

/** Joins per-entry (or per-chunk) arrays into one; a single part is returned as it is. */
function concat<T extends Chunk>(parts: T[], allocate: (length: number) => T): T {
  if (parts.length === 1) return parts[0]!;
  const out = allocate(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

function concatTokens(parts: TokenBatch[], names: string[]): TokenBatch {
  if (parts.length === 1) return parts[0]!;
  const out: TokenBatch = {};
  for (const name of names) out[name] = concat(parts.map((p) => p[name]!), (n) => new Int32Array(n));
  return out;
}

function sliceTokens(tokens: TokenBatch, start: number, end: number): TokenBatch {
  const out: TokenBatch = {};
  for (const [name, data] of Object.entries(tokens)) out[name] = data.subarray(start, end);
  return out;
}

export class ServedModel {
  private readonly encoder: MicroBatcher<EncodePayload, TokenBatch>;
  private readonly decoder: MicroBatcher<DecodePayload, Uint8Array>;
  readonly codebookNames: string[];
  /** When this version began to serve (GET /models says it). */
  readonly loadedAt = new Date();

  constructor(
    readonly model: ModelRef,
    private readonly backend: InferenceBackend,
    private readonly batching: BatchingOptions,
  ) {
    const labels = { model: `${model.name}@${model.version}` };
    const m = model.manifest;
    this.codebookNames = m.codebooks.map((c) => c.name);
    const [gh, gw] = m.grid;
    this.encoder = new MicroBatcher<EncodePayload, TokenBatch>({
      maxBatch: batching.maxBatch,
      maxWaitMs: batching.batchWaitMs,
      maxQueue: batching.maxQueue,
      run: async (payloads) => {
        const count = payloads.reduce((n, p) => n + p.count, 0);
        const tokens = await this.failing('encode', count, backend.encode(concat(payloads.map((p) => p.images), (n) => new Float32Array(n)), count));
        let offset = 0;
        return payloads.map((p) => {
          const part = sliceTokens(tokens, offset * gh * gw, (offset + p.count) * gh * gw);
          offset += p.count;
          return part;
        });
      },
      onBatch: (items, ms) => this.observe('encode', items, ms),
      onDropped: (reason) => droppedRequests.inc({ ...labels, operation: 'encode', reason }),
    });
    this.decoder = new MicroBatcher<DecodePayload, Uint8Array>({
      maxBatch: batching.maxBatch,
      maxWaitMs: batching.batchWaitMs,
      maxQueue: batching.maxQueue,
      keyOf: (p) => `${p.grid.join('x')}/${p.mask.join(',')}`,
      run: async (payloads) => {
        const count = payloads.reduce((n, p) => n + p.count, 0);
        const first = payloads[0]!;
        const tokens = concatTokens(payloads.map((p) => p.tokens), this.codebookNames);
        const images = await this.failing('decode', count, backend.decode(tokens, count, first.grid, first.mask));
        const perImage = images.length / count;
        let offset = 0;
        return payloads.map((p) => {
          const part = images.subarray(offset * perImage, (offset + p.count) * perImage);
          offset += p.count;
          return part;
        });
      },
      onBatch: (items, ms) => this.observe('decode', items, ms),
      onDropped: (reason) => droppedRequests.inc({ ...labels, operation: 'decode', reason }),
    });
  }

  get label(): string {
    return `${this.model.name}@${this.model.version}`;
  }

  /** Most items in one inference run (FQ_MAX_BATCH, or the CLI's run size). */
  get maxBatch(): number {
    return this.batching.maxBatch;
  }

  /** Most items one operation's queue holds (FQ_MAX_QUEUE): a request needing more can never be served. */
  get maxQueue(): number {
    return this.batching.maxQueue;
  }

  get executionProvider(): string {
    return this.backend.executionProvider;
  }

  get backendInfo(): BackendInfo {
    return this.backend.info;
  }

  health(): BackendHealth {
    return this.backend.health?.() ?? { ready: true };
  }

  /** A backend failure is the server's fault: an `internal` error that names the model and keeps the cause. */
  private async failing<T>(operation: Operation, count: number, run: Promise<T>): Promise<T> {
    try {
      return await run;
    } catch (err) {
      if (err instanceof FqError) throw err;
      throw new FqError('internal', `model ${this.label}: the ${operation} run of ${count} images failed`, { cause: err });
    }
  }

  private observe(operation: Operation, items: number, ms: number): void {
    const labels = { model: this.label, operation };
    batchSize.observe(labels, items);
    inferenceDuration.observe(labels, ms / 1000);
    imagesProcessed.inc(labels, items);
    this.reportDepth(operation);
  }

  private reportDepth(operation: Operation): void {
    queueDepth.set({ model: this.label, operation }, operation === 'encode' ? this.encoder.depth : this.decoder.depth);
  }

  /**
   * Admits a whole request before any work is done for it: room for `items` in the operation's
   * queue (see MicroBatcher.reserve). Pass the reservation to encode()/decode() and release it when
   * the request ends, whatever the outcome.
   */
  reserve(operation: Operation, items: number, unit?: string): Reservation {
    return (operation === 'encode' ? this.encoder : this.decoder).reserve(items, unit);
  }

  /** images: [count,3,S,S] float32 in [-1,1]. Returns the grids of all images, [count*h*w] per codebook. */
  async encode(images: Float32Array, count: number, options: SubmitOptions = {}): Promise<TokenBatch> {
    const perImage = images.length / count;
    const chunks: Promise<TokenBatch>[] = [];
    for (let start = 0; start < count; start += this.batching.maxBatch) {
      const n = Math.min(this.batching.maxBatch, count - start);
      const part = images.subarray(start * perImage, (start + n) * perImage);
      chunks.push(this.encoder.submit({ images: part, count: n }, n, options));
    }
    this.reportDepth('encode');
    return concatTokens(await Promise.all(chunks), this.codebookNames);
  }

  /** tokens: [count*h*w] per codebook, validated by the caller. Returns count 8-bit RGB images, HWC. */
  async decode(
    tokens: TokenBatch,
    count: number,
    grid: readonly [number, number],
    mask: Float32Array,
    options: SubmitOptions = {},
  ): Promise<Uint8Array> {
    if (count === 0) throw new FqError('bad_tokens', 'no token grids to decode');
    const cells = grid[0] * grid[1];
    const chunks: Promise<Uint8Array>[] = [];
    for (let start = 0; start < count; start += this.batching.maxBatch) {
      const n = Math.min(this.batching.maxBatch, count - start);
      const part = sliceTokens(tokens, start * cells, (start + n) * cells);
      chunks.push(this.decoder.submit({ tokens: part, count: n, grid, mask }, n, options));
    }
    this.reportDepth('decode');
    return concat(await Promise.all(chunks), (n) => new Uint8Array(n));
  }

  /**
   * Refuses new requests (503 with `reason`), finishes those admitted (their reserved items may still
   * be submitted), then frees the sessions.
   */
  async close(reason = 'the server is shutting down'): Promise<void> {
    await Promise.all([this.encoder.drain(reason), this.decoder.drain(reason)]);
    await this.backend.close();
  }
}
