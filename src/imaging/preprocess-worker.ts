// Worker-thread side of the preprocessor: decode one image and cut its reference crops, off the event loop.
import { move, transferableSymbol, valueSymbol } from 'piscina';
import { FqError, type ErrorKind } from '../errors.ts';
import { readImage, type Orientation } from './read-image.ts';
import { centerCropArr, referenceViews, type Augment } from './reference-crop.ts';

export interface PreprocessTask {
  input: Uint8Array;
  orientation: Orientation;
  augment: Augment;
  imageSize: number;
  maxInputPixels: number;
}

/** FqError does not survive structured cloning (its class and kind are lost), so refusals travel as data. */
export type PreprocessReply = { ok: true; crops: Uint8Array[] } | { ok: false; kind: ErrorKind; message: string };

export default async function preprocessInWorker(task: PreprocessTask) {
  let crops: Uint8Array[];
  try {
    const image = await readImage(task.input, { orientation: task.orientation, maxInputPixels: task.maxInputPixels });
    crops = referenceViews(image, { augment: task.augment, imageSize: task.imageSize });
  } catch (err) {
    if (err instanceof FqError) return { ok: false, kind: err.kind, message: err.message } satisfies PreprocessReply;
    throw err;
  }
  const reply: PreprocessReply = { ok: true, crops };
  // Each crop owns its buffer, so handing the buffers over costs no copy.
  return move({ [transferableSymbol]: crops.map((crop) => crop.buffer), [valueSymbol]: reply });
}

/**
 * Runs the resampling code once on made-up images when the thread starts, so that V8 has compiled
 * the WebAssembly passes and optimised the coefficient tables' code before the first request.
 */
function warmUp(): void {
  for (const [width, height] of [[1024, 768], [1023, 769]] as const) {
    const data = new Uint8Array(width * height * 3);
    for (let i = 0; i < data.length; i++) data[i] = (i * 37) & 255;
    centerCropArr({ data, width, height }, 256);
  }
}

warmUp();
