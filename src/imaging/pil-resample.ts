// Pillow's Image.resize for 8-bit RGB, bit for bit: BOX and BICUBIC filters, separable fixed-point passes.
//
// The algorithm is Pillow 9.4's libImaging/Resample.c, written out again here because the reference
// crop (and so every token a generator was trained on) depends on its exact arithmetic:
// - per output pixel, a window of input pixels centred at (i + 0.5) * scale, the filter widened by
//   the downscale factor (that is the antialiasing), weights normalised to sum 1 in float64, then
//   rounded half away from zero to fixed point with 22 fraction bits;
// - accumulate from 0.5 (1 << 21) in integers, shift right by 22 (floor), clip to 0..255;
// - horizontal pass first, then vertical; a pass whose dimension does not change is skipped.
// JS numbers are IEEE float64 like Pillow's C doubles, and the expressions below keep Pillow's
// evaluation order, so the weights come out identical, not merely close.
import type { RgbImage } from './rgb-image.ts';

export type ResampleFilter = 'box' | 'bicubic';

/** 32 bits minus 8 for the result, minus 2 of headroom for the negative lobes of bicubic. */
const PRECISION_BITS = 22;
const FIXED_ONE = 1 << PRECISION_BITS;
const HALF = 1 << (PRECISION_BITS - 1);
/** Weight of each of two taps when a pass halves an even size exactly: 0.5 in fixed point. */
const PAIR_WEIGHT = HALF;

interface Filter {
  /** Half-width of the filter at scale 1. */
  support: number;
  weight(x: number): number;
}

const FILTERS: Record<ResampleFilter, Filter> = {
  box: { support: 0.5, weight: (x) => (x > -0.5 && x <= 0.5 ? 1 : 0) },
  bicubic: { support: 2, weight: bicubicWeight },
};

/** Keys' cubic convolution with a = -0.5, as Pillow evaluates it. */
function bicubicWeight(x: number): number {
  const a = -0.5;
  if (x < 0) x = -x;
  if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
  return 0;
}

/** For each output pixel along one axis: which input pixels it reads and their fixed-point weights. */
export interface ResampleKernel {
  /** Weights stored per output pixel (Pillow's ksize); only the first `count[i]` are used. */
  taps: number;
  first: Int32Array;
  count: Int32Array;
  weights: Int32Array;
}

export function resampleKernel(inSize: number, outSize: number, filterName: ResampleFilter): ResampleKernel {
  const filter = FILTERS[filterName];
  // Pillow receives the source box as C floats, so the input extent is rounded to float32 first.
  const scale = Math.fround(inSize) / outSize;
  const filterScale = scale < 1 ? 1 : scale;
  const support = filter.support * filterScale;
  const taps = Math.ceil(support) * 2 + 1;
  const inverseFilterScale = 1 / filterScale;

  const first = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const weights = new Int32Array(outSize * taps);
  const raw = new Float64Array(taps);
  for (let out = 0; out < outSize; out++) {
    const center = (out + 0.5) * scale;
    // C's (int) cast truncates; negative starts are clamped to 0 right after, as in Pillow.
    const lo = Math.max(0, Math.trunc(center - support + 0.5));
    const hi = Math.min(inSize, Math.trunc(center + support + 0.5));
    const n = hi - lo;
    let sum = 0;
    for (let i = 0; i < n; i++) {
      const w = filter.weight((i + lo - center + 0.5) * inverseFilterScale);
      raw[i] = w;
      sum += w;
    }
    const base = out * taps;
    for (let i = 0; i < n; i++) {
      const w = sum !== 0 ? raw[i]! / sum : raw[i]!;
      weights[base + i] = w < 0 ? Math.trunc(-0.5 + w * FIXED_ONE) : Math.trunc(0.5 + w * FIXED_ONE);
    }
    first[out] = lo;
    count[out] = n;
  }
  return { taps, first, count, weights };
}

/** True when every output pixel is the 50/50 mix of input pixels 2i and 2i+1 (BOX on an even size). */
function isPairAverage(kernel: ResampleKernel): boolean {
  const { taps, first, count, weights } = kernel;
  for (let out = 0; out < first.length; out++) {
    const k = out * taps;
    if (count[out] !== 2 || first[out] !== 2 * out || weights[k] !== PAIR_WEIGHT || weights[k + 1] !== PAIR_WEIGHT) {
      return false;
    }
  }
  return true;
}

/** Resizes like Pillow's `Image.resize((outWidth, outHeight), resample)` on an 'RGB' image. */
export function resample(image: RgbImage, outWidth: number, outHeight: number, filter: ResampleFilter): RgbImage {
  let current = image;
  if (outWidth !== image.width) {
    current = resampleRows(current, outWidth, resampleKernel(image.width, outWidth, filter));
  }
  if (outHeight !== image.height) {
    current = resampleColumns(current, outHeight, resampleKernel(image.height, outHeight, filter));
  }
  return current;
}

/** Horizontal pass: every row of `image` resampled to `outWidth` pixels. */
export function resampleRows(image: RgbImage, outWidth: number, kernel: ResampleKernel): RgbImage {
  const { data: src, width, height } = image;
  const out = new Uint8Array(outWidth * height * 3);
  const rowIn = width * 3;
  if (isPairAverage(kernel)) {
    // (HALF + (a + b) * HALF) >> 22 is (a + b + 1) >> 1: the same bytes without multiplications.
    let o = 0;
    for (let y = 0; y < height; y++) {
      let p = y * rowIn;
      for (let x = 0; x < outWidth; x++, p += 6) {
        out[o++] = (src[p]! + src[p + 3]! + 1) >> 1;
        out[o++] = (src[p + 1]! + src[p + 4]! + 1) >> 1;
        out[o++] = (src[p + 2]! + src[p + 5]! + 1) >> 1;
      }
    }
    return { data: out, width: outWidth, height };
  }
  const { taps, first, count, weights } = kernel;
  let o = 0;
  for (let y = 0; y < height; y++) {
    const row = y * rowIn;
    for (let x = 0; x < outWidth; x++) {
      const k = x * taps;
      const n = count[x]!;
      let p = row + first[x]! * 3;
      let r = HALF;
      let g = HALF;
      let b = HALF;
      for (let i = 0; i < n; i++, p += 3) {
        const w = weights[k + i]!;
        r += src[p]! * w;
        g += src[p + 1]! * w;
        b += src[p + 2]! * w;
      }
      out[o++] = clip8(r);
      out[o++] = clip8(g);
      out[o++] = clip8(b);
    }
  }
  return { data: out, width: outWidth, height };
}

/** Vertical pass: every column of `image` resampled to `outHeight` pixels, a whole row at a time. */
export function resampleColumns(image: RgbImage, outHeight: number, kernel: ResampleKernel): RgbImage {
  const { data: src, width } = image;
  const rowBytes = width * 3;
  const out = new Uint8Array(rowBytes * outHeight);
  if (isPairAverage(kernel)) {
    for (let y = 0; y < outHeight; y++) {
      const a = 2 * y * rowBytes;
      const b = a + rowBytes;
      const o = y * rowBytes;
      for (let j = 0; j < rowBytes; j++) out[o + j] = (src[a + j]! + src[b + j]! + 1) >> 1;
    }
    return { data: out, width, height: outHeight };
  }
  const { taps, first, count, weights } = kernel;
  // Summing tap by tap over whole rows reads memory in order; integer sums are order-independent.
  const sums = new Int32Array(rowBytes);
  for (let y = 0; y < outHeight; y++) {
    sums.fill(HALF);
    const k = y * taps;
    const n = count[y]!;
    for (let i = 0; i < n; i++) {
      const w = weights[k + i]!;
      const row = (first[y]! + i) * rowBytes;
      for (let j = 0; j < rowBytes; j++) sums[j] += src[row + j]! * w;
    }
    const o = y * rowBytes;
    for (let j = 0; j < rowBytes; j++) out[o + j] = clip8(sums[j]!);
  }
  return { data: out, width, height: outHeight };
}

/** Pillow's clip8: arithmetic shift (floor) to 8 bits, then clamp to 0..255. */
function clip8(sum: number): number {
  const v = sum >> PRECISION_BITS;
  return v < 0 ? 0 : v > 255 ? 255 : v;
}
