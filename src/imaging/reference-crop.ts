// The reference's crops, bit for bit: ADM's centre crop (BOX halving, BICUBIC to size, centre window)
// and the views FQGAN's code extraction encodes (the crop and its mirror, or torchvision's TenCrop).
import { axisSpan, resampleSpans, type SpanStep, type ResampleFilter } from './pil-resample.ts';
import type { RgbImage } from './rgb-image.ts';

/** Views encoded per image: the centre crop; it and its mirror (the reference's extraction); torchvision's TenCrop. */
export const AUGMENTS = ['none', 'flip', 'ten_crop'] as const;
export type Augment = (typeof AUGMENTS)[number];

/** The extractor's default `--crop-range`: ten crops are cut from a centre crop this much larger. */
export const DEFAULT_TEN_CROP_RANGE = 1.1;

/** Python 3's round() on a float: halves go to the even neighbour. */
export function roundHalfEven(x: number): number {
  const floor = Math.floor(x);
  const fraction = x - floor;
  if (fraction < 0.5) return floor;
  if (fraction > 0.5) return floor + 1;
  return floor % 2 === 0 ? floor : floor + 1;
}

/** One Image.resize call of the reference crop. */
export interface ResizeStep {
  filter: ResampleFilter;
  inWidth: number;
  inHeight: number;
  outWidth: number;
  outHeight: number;
}

/**
 * The resizes `center_crop_arr` applies to a width x height image: while the short side is at least
 * 2 * imageSize, halve both sides (floor) with BOX; then BICUBIC so the short side is imageSize,
 * each side rounded as Python rounds.
 */
export function centerCropResizes(width: number, height: number, imageSize: number): ResizeStep[] {
  const steps: ResizeStep[] = [];
  let w = width;
  let h = height;
  while (Math.min(w, h) >= 2 * imageSize) {
    steps.push({ filter: 'box', inWidth: w, inHeight: h, outWidth: Math.floor(w / 2), outHeight: Math.floor(h / 2) });
    w = Math.floor(w / 2);
    h = Math.floor(h / 2);
  }
  const scale = imageSize / Math.min(w, h);
  steps.push({ filter: 'bicubic', inWidth: w, inHeight: h, outWidth: roundHalfEven(w * scale), outHeight: roundHalfEven(h * scale) });
  return steps;
}

/**
 * The largest image (width * height) the reference crop of one view passes through: the input
 * itself for a photo, but the upscaled intermediate for an extreme aspect ratio (a 1 x 20000 strip
 * becomes 256 x 5,120,000 before its centre is cut out). What decoding and cropping an image costs.
 */
export function largestIntermediatePixels(width: number, height: number, augment: Augment, imageSize: number, tenCropRange = DEFAULT_TEN_CROP_RANGE): number {
  const side = augment === 'ten_crop' ? Math.trunc(imageSize * tenCropRange) : imageSize;
  return centerCropResizes(width, height, side).reduce((most, step) => Math.max(most, step.outWidth * step.outHeight), width * height);
}

/**
 * `center_crop_arr(pil_image, imageSize)` from the reference (guided-diffusion's ADM crop): the
 * resizes of `centerCropResizes`, then the centre imageSize x imageSize window at offsets
 * (side - imageSize) // 2. Returns imageSize * imageSize * 3 bytes, HWC.
 *
 * Only pixels that end up in the crop are computed: walking back from the crop window, each resize
 * is asked for just the outputs the next one reads (three quarters of a 4:3 photo's width, a small
 * part of a panorama). An output pixel depends only on its own input window, so the bytes are
 * those of the full computation.
 */
export function centerCropArr(image: RgbImage, imageSize = 256): Uint8Array {
  const steps = centerCropResizes(image.width, image.height, imageSize);
  const last = steps[steps.length - 1]!;
  const left = Math.floor((last.outWidth - imageSize) / 2);
  const top = Math.floor((last.outHeight - imageSize) / 2);
  let needX = { start: left, end: left + imageSize };
  let needY = { start: top, end: top + imageSize };
  const spans: SpanStep[] = [];
  for (let i = steps.length - 1; i >= 0; i--) {
    const step = steps[i]!;
    const xs = axisSpan(step.inWidth, step.outWidth, step.filter, needX.start, needX.end);
    const ys = axisSpan(step.inHeight, step.outHeight, step.filter, needY.start, needY.end);
    spans.unshift({ xs, ys });
    needX = { start: xs.inStart, end: xs.inEnd };
    needY = { start: ys.inStart, end: ys.inEnd };
  }
  // Always a fresh buffer (a 256x256 input passes through untouched, but is still copied).
  return resampleSpans(image, spans).data;
}

/** A copy of the width x height window whose top-left pixel is (left, top). */
export function cropWindow(image: RgbImage, left: number, top: number, width: number, height: number): Uint8Array {
  if (left < 0 || top < 0 || left + width > image.width || top + height > image.height) {
    throw new RangeError(`window ${width}x${height}+${left}+${top} outside ${image.width}x${image.height}`);
  }
  const out = new Uint8Array(width * height * 3);
  const rowBytes = width * 3;
  for (let y = 0; y < height; y++) {
    const start = ((top + y) * image.width + left) * 3;
    out.set(image.data.subarray(start, start + rowBytes), y * rowBytes);
  }
  return out;
}

/** The horizontal mirror (torch.flip(x, dims=[-1]) on the tensor, PIL's FLIP_LEFT_RIGHT). */
export function flipHorizontal(image: RgbImage): RgbImage {
  const { data, width, height } = image;
  const out = new Uint8Array(data.length);
  for (let y = 0; y < height; y++) {
    const row = y * width * 3;
    for (let x = 0; x < width; x++) {
      const from = row + x * 3;
      const to = row + (width - 1 - x) * 3;
      out[to] = data[from]!;
      out[to + 1] = data[from + 1]!;
      out[to + 2] = data[from + 2]!;
    }
  }
  return { data: out, width, height };
}

/** torchvision's five_crop: top-left, top-right, bottom-left, bottom-right, centre (offsets rounded half to even). */
export function fiveCrop(image: RgbImage, size: number): Uint8Array[] {
  const right = image.width - size;
  const bottom = image.height - size;
  return [
    cropWindow(image, 0, 0, size, size),
    cropWindow(image, right, 0, size, size),
    cropWindow(image, 0, bottom, size, size),
    cropWindow(image, right, bottom, size, size),
    cropWindow(image, roundHalfEven(right / 2), roundHalfEven(bottom / 2), size, size),
  ];
}

/**
 * The extractor's `--ten-crop` views: `center_crop_arr` to int(imageSize * cropRange), then
 * torchvision's TenCrop(imageSize): the five crops of that square, then the five crops of its
 * mirror image (crops *of* the mirror, so the mirrored centre crop sits one pixel off when the
 * margin is odd, exactly as in the reference).
 */
export function tenCrop(image: RgbImage, imageSize = 256, cropRange = DEFAULT_TEN_CROP_RANGE): Uint8Array[] {
  const side = Math.trunc(imageSize * cropRange);
  if (side < imageSize) throw new RangeError(`ten-crop range ${cropRange} gives ${side}px, smaller than the ${imageSize}px crops`);
  const square: RgbImage = { data: centerCropArr(image, side), width: side, height: side };
  return [...fiveCrop(square, imageSize), ...fiveCrop(flipHorizontal(square), imageSize)];
}

export interface ReferenceViewOptions {
  augment: Augment;
  imageSize?: number;
  tenCropRange?: number;
}

/** The crops the reference encodes for one image: [centre], [centre, mirror] or the ten crops. */
export function referenceViews(image: RgbImage, options: ReferenceViewOptions): Uint8Array[] {
  const imageSize = options.imageSize ?? 256;
  switch (options.augment) {
    case 'none':
      return [centerCropArr(image, imageSize)];
    case 'flip': {
      const crop = centerCropArr(image, imageSize);
      return [crop, flipHorizontal({ data: crop, width: imageSize, height: imageSize }).data];
    }
    case 'ten_crop':
      return tenCrop(image, imageSize, options.tenCropRange ?? DEFAULT_TEN_CROP_RANGE);
  }
}
