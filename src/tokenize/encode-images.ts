// Encode images: admission (every view of every image) -> deadline -> codebooks checked -> image files
// decoded and cropped (worker threads) -> one tensor -> the model's encode queue -> grids per view.
import { clipped, FqError } from '../errors.ts';
import { cropsToNchw } from '../imaging/preprocess.ts';
import type { Orientation } from '../imaging/read-image.ts';
import type { TokenBatch } from '../backends/backend.ts';
import type { ServedModel } from '../serving/served-model.ts';
import { admit, type Admission, type RequestLimits } from './admission.ts';
import { selectCodebooks } from './codebooks.ts';
import { VIEWS, type Augment } from './views.ts';

/** What encoding needs from preprocessing: image file bytes in, the crops of every view out (HWC RGB uint8, imageSize square). */
export interface CropSource {
  preprocess(
    input: Uint8Array,
    options: { orientation: Orientation; augment: Augment; imageSize: number; item?: number; signal?: AbortSignal; transfer?: boolean },
  ): Promise<Uint8Array[]>;
}

export interface SourceImage {
  bytes: Uint8Array;
  name?: string;
  /** Nothing else holds `bytes`' buffer: preprocessing may move it to a worker thread instead of copying it. */
  owned?: boolean;
}

export interface EncodeImagesOptions {
  augment: Augment;
  orientation: Orientation;
  /** Codebooks to return (all when undefined). */
  codebooks?: string[];
}

export interface EncodedBatch {
  views: readonly string[];
  /** Number of source images. */
  count: number;
  grid: readonly [number, number];
  codebooks: string[];
  /** [count * views * h * w] per returned codebook, image-major then view. */
  tokens: TokenBatch;
}

/** Room in the encode queue for every view of every image, or a 413 (never fits) / 503 (not now) that says why. */
function admitViews(model: ServedModel, images: number, augment: Augment, limits: RequestLimits): Admission {
  const views = VIEWS[augment].length;
  const unit = views === 1 ? 'images' : `views (${images} images x ${views} for augment=${augment})`;
  try {
    return admit(model, 'encode', images * views, unit, limits);
  } catch (err) {
    if (err instanceof FqError && err.kind === 'too_large' && views > 1) {
      const most = Math.floor(model.maxQueue / views);
      throw new FqError('too_large', `${err.message}; send at most ${most} images per request with augment=${augment}`, { cause: err });
    }
    throw err;
  }
}

export async function encodeImages(
  model: ServedModel,
  cropSource: CropSource,
  images: SourceImage[],
  options: EncodeImagesOptions,
  limits: RequestLimits = {},
): Promise<EncodedBatch> {
  const views = VIEWS[options.augment];
  const admission = admitViews(model, images.length, options.augment, limits);
  try {
    const codebooks = selectCodebooks(model, options.codebooks);
    const size = model.model.manifest.image_size; // the crop is the model's input, whatever its size
    const crops = await Promise.all(
      images.map(async (image, item) => {
        try {
          return await cropSource.preprocess(image.bytes, {
            orientation: options.orientation,
            augment: options.augment,
            imageSize: size,
            item,
            signal: admission.signal,
            transfer: image.owned,
          });
        } catch (err) {
          if (admission.signal.aborted) throw admission.signal.reason; // timed out or the client left: not this image's fault
          admission.stop(`image ${item} failed`); // the request fails: decode none of the others still waiting
          if (err instanceof FqError) {
            const where = image.name ? `image ${item} (${clipped(image.name)})` : `image ${item}`;
            throw new FqError(err.kind, `${where}: ${err.message}`, { item, retryAfterSeconds: err.retryAfterSeconds, cause: err });
          }
          throw err;
        }
      }),
    );
    const flat = crops.flat();
    if (flat.length !== images.length * views.length) throw new Error(`preprocessing produced ${flat.length} crops, expected ${images.length * views.length}`);
    const all = await model.encode(cropsToNchw(flat, size), flat.length, admission.submit);
    const tokens: TokenBatch = {};
    for (const name of codebooks) tokens[name] = all[name]!;
    return { views, count: images.length, grid: model.model.manifest.grid, codebooks, tokens };
  } finally {
    admission.end();
  }
}
