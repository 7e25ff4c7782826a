// The preprocessing entry point: image bytes -> the reference's 256x256 crops, decoded and cut in worker threads.
//
//   const preprocessor = createPreprocessor({ maxInputPixels: 64_000_000 });
//   const crops = await preprocessor.preprocess(bytes, { imageSize: 256, orientation: 'ignore', augment: 'flip' });
//   // crops: Uint8Array[] (1, 2 or 10 of them), each imageSize * imageSize * 3 bytes, HWC RGB
//   const tensor = cropsToNchw(crops, 256); // float32 [n, 3, 256, 256] in [-1, 1], the encoder's input
//   await preprocessor.close();
//
// - `orientation: 'ignore'` (default) is reference-exact: Pillow does not apply EXIF orientation.
//   `'exif'` turns the image upright first.
// - `augment`: 'none' -> [centre crop]; 'flip' -> [centre crop, its mirror] (the reference's code
//   extraction); 'ten_crop' -> torchvision TenCrop order: tl, tr, bl, br, centre of a
//   int(imageSize * 1.1) centre crop, then the same five of its mirror.
// - Refusals are FqError: 'bad_image' (empty, undecodable, truncated), 'too_large' (over
//   maxInputPixels, checked from the header before decoding). `item` is attached when given.
// - `signal`: checked before the image's decode starts, and raced against the worker's result, so
//   a caller that left costs no decode and does not wait for one. It rejects with the signal's
//   reason when that is an FqError (e.g. a timeout), else 'bad_request' (aborted).
// - At most `threads` decodes run at once, and at most `maxDecodePixelsInFlight` pixels summed over
//   them (each image counts its largest stage: width * height, or the upscaled intermediate of a
//   very elongated image); later images wait their turn (read-gate.ts). An image whose largest
//   stage is over maxInputPixels is refused ('too_large') before decoding.
// Why workers: decoding runs on libuv threads anyway, but the PIL-exact resampling is JavaScript and
// takes tens of milliseconds for a photo; on the main thread it would stall every other request.
import os from 'node:os';
import { Piscina } from 'piscina';
// Load sharp's native library in the main thread as well, so that it stays loaded when workers exit
// (sharp's advice for worker threads on glibc).
import 'sharp';
import { abortReason, FqError } from '../errors.ts';
import { decodedPixelsInFlight, decodeWaiting, imagesDecoded } from '../metrics.ts';
import { workerExecArgv } from '../worker-exec-argv.ts';
import { checkedHeader, type Orientation } from './read-image.ts';
import { ReadGate, type GateState } from './read-gate.ts';
import type { PreprocessReply, PreprocessTask } from './preprocess-worker.ts';
import { DEFAULT_TEN_CROP_RANGE, largestIntermediatePixels, type Augment } from './reference-crop.ts';

export type { Orientation } from './read-image.ts';
export type { Augment } from './reference-crop.ts';

export interface PreprocessorOptions {
  /** Images with more pixels are refused (`too_large`) before they are decoded. */
  maxInputPixels: number;
  /** Worker threads; 0 or undefined: one per core. */
  threads?: number;
  /** Most decoded pixels in flight across all calls (default: 2 * maxInputPixels). */
  maxDecodePixelsInFlight?: number;
}

export interface PreprocessOptions {
  /** Side of the square crops: the model's image_size (every request crops to its model's input). */
  imageSize: number;
  orientation?: Orientation;
  augment?: Augment;
  /** Index of this image in a batch request, copied onto any FqError. */
  item?: number;
  /** The caller stopped waiting (client gone, timeout): skip or stop waiting for the decode. */
  signal?: AbortSignal;
  /** The caller gives `input`'s buffer up: it moves to the worker instead of being copied (a 60 MB copy stalls the event loop). */
  transfer?: boolean;
}

export interface Preprocessor {
  /** The crops of one image: 1, 2 or 10 buffers of imageSize * imageSize * 3 bytes (HWC RGB). */
  preprocess(input: Uint8Array, options: PreprocessOptions): Promise<Uint8Array[]>;
  /** Finishes queued work, then stops the threads. */
  close(): Promise<void>;
}

const WORKER_URL = new URL('./preprocess-worker.ts', import.meta.url);

export function createPreprocessor(options: PreprocessorOptions): Preprocessor {
  const threads = options.threads || os.availableParallelism();
  if (!isPositiveInteger(options.maxInputPixels)) throw new RangeError(`maxInputPixels must be a positive integer`);
  const pixelBudget = options.maxDecodePixelsInFlight ?? 2 * options.maxInputPixels;
  if (!isPositiveInteger(pixelBudget)) throw new RangeError(`maxDecodePixelsInFlight must be a positive integer`);
  const gate = new ReadGate({ slots: threads, pixelBudget, onChange: reportGate });
  let closed = false;
  const pool = new Piscina<PreprocessTask, PreprocessReply>({
    filename: WORKER_URL.href,
    minThreads: 1,
    maxThreads: threads,
    // Starting a thread costs a few hundred ms (loading and warming up the code), so extra threads
    // stay for a while after a burst instead of piscina's default of leaving at once.
    idleTimeout: 60_000,
    execArgv: workerExecArgv(),
  });

  async function preprocess(input: Uint8Array, call: PreprocessOptions): Promise<Uint8Array[]> {
    if (closed) throw new FqError('unavailable', 'preprocessing has shut down', { item: call.item });
    const imageSize = call.imageSize;
    if (!isPositiveInteger(imageSize)) throw new FqError('bad_request', `image size must be a positive integer, got ${imageSize}`, { item: call.item });
    if (call.signal?.aborted) throw withItem(abortReason(call.signal), call.item);
    // The header alone (in this thread, cheap) gives the size to budget, and refuses bombs before any wait.
    const augment = call.augment ?? 'none';
    let pixels: number;
    try {
      const { width, height } = await checkedHeader(input, options.maxInputPixels);
      pixels = largestIntermediatePixels(width, height, augment, imageSize, DEFAULT_TEN_CROP_RANGE);
      if (pixels > options.maxInputPixels) {
        throw new FqError(
          'too_large',
          `the image is ${width}x${height}: too elongated, its crop would pass through a ${pixels}-pixel resize, over the limit of ${options.maxInputPixels}`,
        );
      }
    } catch (err) {
      throw withItem(err, call.item);
    }
    const release = await gate.acquire(pixels, call.signal).catch((err: unknown) => {
      throw withItem(err, call.item);
    });
    // Unless the caller gives its buffer up, it keeps its bytes: copy just these once and hand the copy
    // over (a view may sit inside a much larger buffer that cloning would copy whole).
    // (Not input.slice(): on a Buffer that is a view, and transferring it would detach the caller's.)
    const own = call.transfer ? input : new Uint8Array(input);
    const task: PreprocessTask = {
      input: own,
      orientation: call.orientation ?? 'ignore',
      augment,
      imageSize,
      maxInputPixels: options.maxInputPixels,
    };
    imagesDecoded.inc();
    // The budget is given back when the worker is done with the image, not when the caller leaves.
    const running = pool.run(task, { transferList: [own.buffer as ArrayBuffer] }).finally(release);
    let reply: PreprocessReply;
    try {
      reply = await untilAborted(running, call.signal);
    } catch (err) {
      if (call.signal?.aborted) throw withItem(abortReason(call.signal), call.item);
      throw new FqError('internal', `preprocessing failed: ${err instanceof Error ? err.message : String(err)}`, {
        item: call.item,
        cause: err,
      });
    }
    if (!reply.ok) throw new FqError(reply.kind, reply.message, { item: call.item });
    return reply.crops;
  }

  async function close(): Promise<void> {
    closed = true;
    await pool.close();
  }

  return { preprocess, close };
}

function reportGate(state: GateState): void {
  decodedPixelsInFlight.set(state.pixels);
  decodeWaiting.set(state.waiting);
}

/** The task's result, or the signal's rejection as soon as it aborts (the task finishes unobserved). */
function untilAborted<T>(task: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return task;
  task.catch(() => {}); // a failure after the caller left is nobody's to handle
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(abortReason(signal));
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    task.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

function withItem(err: unknown, item: number | undefined): unknown {
  if (!(err instanceof FqError) || item === undefined || err.item !== undefined) return err;
  return new FqError(err.kind, err.message, { item, retryAfterSeconds: err.retryAfterSeconds, cause: err.cause });
}

function isPositiveInteger(x: number): boolean {
  return Number.isInteger(x) && x > 0;
}

const FLOAT_OF_BYTE = byteToUnitRange();

/**
 * The encoder's input: crops (HWC uint8) -> float32 NCHW in [-1, 1]. Computed the way torchvision
 * does it (ToTensor's x / 255 then Normalize(0.5, 0.5), in float32), which differs in the last bit
 * from float64 x / 255 * 2 - 1 for half of the byte values.
 */
export function cropsToNchw(crops: Uint8Array[], imageSize: number): Float32Array {
  const plane = imageSize * imageSize;
  const out = new Float32Array(crops.length * 3 * plane);
  crops.forEach((crop, n) => {
    if (crop.length !== plane * 3) throw new RangeError(`crop ${n} has ${crop.length} bytes, expected ${plane * 3}`);
    const base = n * 3 * plane;
    for (let i = 0; i < plane; i++) {
      out[base + i] = FLOAT_OF_BYTE[crop[i * 3]!]!;
      out[base + plane + i] = FLOAT_OF_BYTE[crop[i * 3 + 1]!]!;
      out[base + 2 * plane + i] = FLOAT_OF_BYTE[crop[i * 3 + 2]!]!;
    }
  });
  return out;
}

function byteToUnitRange(): Float32Array {
  const table = new Float32Array(256);
  for (let v = 0; v < 256; v++) {
    const unit = Math.fround(v / 255); // float32 division: float64 then one rounding is exact here
    table[v] = Math.fround(Math.fround(unit - 0.5) / 0.5);
  }
  return table;
}
