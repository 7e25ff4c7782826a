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
//
// Every output pixel depends only on its own input window, so a caller that keeps only part of the
// result (a centre crop) can ask for just that part: `axisSpan` + `resampleSpans`. The bytes are the
// same as cutting them out of the full resize. The passes themselves run in WebAssembly SIMD
// (pil-resample-passes.ts); the coefficient tables are computed here, in float64 as Pillow does.
import { HALF, PassArena, PRECISION_BITS, type ResampleKernel, type WasmImage } from './pil-resample-passes.ts';
import type { RgbImage } from './rgb-image.ts';

export type ResampleFilter = 'box' | 'bicubic';
export type { ResampleKernel } from './pil-resample-passes.ts';

const FIXED_ONE = 1 << PRECISION_BITS;

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

/**
 * One axis of one resize, limited to the outputs [outStart, outEnd) and the inputs [inStart, inEnd)
 * they read. `kernel` is null when the size does not change: Pillow skips that pass, so the span is
 * the identity and inputs equal outputs.
 */
export interface AxisSpan {
  inSize: number;
  outSize: number;
  outStart: number;
  outEnd: number;
  inStart: number;
  inEnd: number;
  kernel: ResampleKernel | null;
}

export function axisSpan(
  inSize: number,
  outSize: number,
  filter: ResampleFilter,
  outStart = 0,
  outEnd = outSize,
): AxisSpan {
  if (outStart < 0 || outEnd > outSize || outStart >= outEnd) {
    throw new RangeError(`span ${outStart}..${outEnd} outside 0..${outSize}`);
  }
  if (inSize === outSize) return { inSize, outSize, outStart, outEnd, inStart: outStart, inEnd: outEnd, kernel: null };
  const full = resampleKernel(inSize, outSize, filter);
  let inStart = inSize;
  let inEnd = 0;
  for (let out = outStart; out < outEnd; out++) {
    inStart = Math.min(inStart, full.first[out]!);
    inEnd = Math.max(inEnd, full.first[out]! + full.count[out]!);
  }
  return { inSize, outSize, outStart, outEnd, inStart, inEnd, kernel: full };
}

/** The kernel rows for outputs [outStart, outEnd), with input positions counted from `origin`. */
function kernelWindow(kernel: ResampleKernel, outStart: number, outEnd: number, origin: number): ResampleKernel {
  const first = kernel.first.slice(outStart, outEnd);
  for (let i = 0; i < first.length; i++) first[i] = first[i]! - origin;
  return {
    taps: kernel.taps,
    first,
    count: kernel.count.slice(outStart, outEnd),
    weights: kernel.weights.subarray(outStart * kernel.taps, outEnd * kernel.taps),
  };
}

/** One resize of a chain, limited to the outputs the next one reads. */
export interface SpanStep {
  xs: AxisSpan;
  ys: AxisSpan;
}

/**
 * A chain of (parts of) Pillow resizes: each step reads the output of the one before, and must read
 * only pixels that step computed. Runs in WebAssembly memory: the pixels the first step reads are
 * copied in once, the last step's output is copied out once. Returns an image of
 * (xs.outEnd - xs.outStart) x (ys.outEnd - ys.outStart) pixels of the last step.
 */
export function resampleSpans(image: RgbImage, steps: SpanStep[]): RgbImage {
  const { xs, ys } = steps[0]!;
  return PassArena.run((arena) => {
    let current = arena.copyIn(image, xs.inStart, ys.inStart, xs.inEnd - xs.inStart, ys.inEnd - ys.inStart);
    let originX = xs.inStart;
    let originY = ys.inStart;
    for (const step of steps) {
      current = resampleSpan(arena, current, originX, originY, step);
      originX = step.xs.outStart;
      originY = step.ys.outStart;
    }
    return arena.copyOut(current);
  });
}

/** One step: `image` holds (at least) the input pixels the spans read; its top-left pixel is (left, top) of the full input. */
function resampleSpan(arena: PassArena, image: WasmImage, left: number, top: number, { xs, ys }: SpanStep): WasmImage {
  if (xs.inStart < left || xs.inEnd > left + image.width || ys.inStart < top || ys.inEnd > top + image.height) {
    throw new RangeError('resampleSpan: the image does not cover the input the spans read');
  }
  const columns = xs.kernel ? kernelWindow(xs.kernel, xs.outStart, xs.outEnd, left) : null;
  const rows = ys.kernel ? kernelWindow(ys.kernel, ys.outStart, ys.outEnd, top) : null;
  if (columns && rows && isPairAverage(columns) && isPairAverage(rows)) {
    return arena.halvePairs(image, columns.first[0]!, rows.first[0]!, columns.first.length, rows.first.length);
  }
  // Horizontal pass (or, when the width is unchanged, just the columns needed) over the rows needed.
  const rowStart = ys.inStart - top;
  const rowEnd = ys.inEnd - top;
  const horizontal = columns
    ? arena.resampleRows(image, rowStart, rowEnd, columns)
    : arena.window(image, xs.inStart - left, rowStart, xs.inEnd - xs.inStart, rowEnd - rowStart);
  if (!rows) return horizontal;
  return arena.resampleColumns(horizontal, kernelWindow(ys.kernel!, ys.outStart, ys.outEnd, ys.inStart));
}

/** True when output i is the 50/50 mix of inputs first[0] + 2i and the next (BOX halving an even size). */
function isPairAverage(kernel: ResampleKernel): boolean {
  const { taps, first, count, weights } = kernel;
  const start = first[0]!;
  for (let out = 0; out < first.length; out++) {
    const k = out * taps;
    if (count[out] !== 2 || first[out] !== start + 2 * out || weights[k] !== HALF || weights[k + 1] !== HALF) {
      return false;
    }
  }
  return true;
}
