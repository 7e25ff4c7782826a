// Encode: image files -> reference crops (worker threads) -> one tensor -> tokenizer -> grids per view.
// The whole request (every view of every image) is admitted to the queue before anything is decoded.
import { FqError } from '../errors.ts';
import { cropsToNchw } from '../imaging/preprocess.ts';
import type { TokenBatch } from '../backends/backend.ts';
import type { Reservation } from '../serving/batcher.ts';
import { requestScope, type RequestLimits } from '../serving/request-scope.ts';
import type { ServedModel } from '../serving/served-model.ts';
import { VIEWS, type Augment } from './views.ts';

import type { Orientation } from '../imaging/read-image.ts';

export type { Orientation };

/** What encode needs from preprocessing: bytes in, the crops of every view out (HWC RGB uint8, imageSize square). */
export interface CropSource {
  preprocess(
    input: Uint8Array,
    options: { orientation: Orientation; augment: Augment; imageSize: number; item?: number; signal?: AbortSignal },
  ): Promise<Uint8Array[]>;
}

export interface SourceImage {
  bytes: Uint8Array;
  name?: string;
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

/** Checks a requested subset of codebooks against the model; returns them in model order. */
export function selectCodebooks(tokenizer: ServedModel, requested: string[] | undefined): string[] {
  const all = tokenizer.codebookNames;
  if (!requested || requested.length === 0) return all;
  const unknown = requested.filter((n) => !all.includes(n));
  if (unknown.length > 0) {
    throw new FqError('bad_request', `unknown codebook(s) ${unknown.join(', ')}; model ${tokenizer.label} has ${all.join(', ')}`);
  }
  return all.filter((n) => requested.includes(n));
}

/** Room in the encode queue for every view of every image, or a 413 (never fits) / 503 (not now) that says why. */
function admit(tokenizer: ServedModel, images: number, augment: Augment): Reservation {
  const views = VIEWS[augment].length;
  const unit = views === 1 ? 'images' : `views (${images} images x ${views} for augment=${augment})`;
  try {
    return tokenizer.reserve('encode', images * views, unit);
  } catch (err) {
    if (err instanceof FqError && err.kind === 'too_large' && views > 1) {
      const most = Math.floor(tokenizer.maxQueue / views);
      throw new FqError('too_large', `${err.message}; send at most ${most} images per request with augment=${augment}`, { cause: err });
    }
    throw err;
  }
}

export async function encodeImages(
  tokenizer: ServedModel,
  cropSource: CropSource,
  images: SourceImage[],
  options: EncodeImagesOptions,
  limits: RequestLimits = {},
): Promise<EncodedBatch> {
  const codebooks = selectCodebooks(tokenizer, options.codebooks);
  const views = VIEWS[options.augment];
  const size = tokenizer.model.manifest.image_size; // the crop is the model's input, whatever its size
  const reservation = admit(tokenizer, images.length, options.augment);
  const scope = requestScope(limits);
  try {
    const crops = await Promise.all(
      images.map(async (image, item) => {
        try {
          return await cropSource.preprocess(image.bytes, {
            orientation: options.orientation,
            augment: options.augment,
            imageSize: size,
            item,
            signal: scope.signal,
          });
        } catch (err) {
          if (scope.signal.aborted) throw scope.signal.reason; // timed out or the client left: not this image's fault
          scope.stop(`image ${item} failed`); // the request fails: decode none of the others still waiting
          if (err instanceof FqError) {
            const where = image.name ? `image ${item} (${image.name})` : `image ${item}`;
            throw new FqError(err.kind, `${where}: ${err.message}`, { item, retryAfterSeconds: err.retryAfterSeconds, cause: err });
          }
          throw err;
        }
      }),
    );
    const flat = crops.flat();
    if (flat.length !== images.length * views.length) throw new Error(`preprocessing produced ${flat.length} crops, expected ${images.length * views.length}`);
    const all = await tokenizer.encode(cropsToNchw(flat, size), flat.length, { signal: scope.signal, reservation });
    const tokens: TokenBatch = {};
    for (const name of codebooks) tokens[name] = all[name]!;
    return { views, count: images.length, grid: tokenizer.model.manifest.grid, codebooks, tokens };
  } finally {
    reservation.release();
    scope.dispose();
  }
}
