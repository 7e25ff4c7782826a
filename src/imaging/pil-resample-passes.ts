// The two inner loops of Pillow's resampling (horizontal, then vertical), unrolled for the tap counts a crop uses.
//
// Same arithmetic as Pillow's ImagingResampleHorizontal/Vertical_8bpc: per output value, a 32-bit
// integer sum from 1 << 21 of input byte * fixed-point weight, shifted right by 22 (floor), clipped
// to 0..255. The sums cannot overflow 32 bits (255 * the weights' absolute sum, about 1.2 * 2^22, is
// under 2^31), so Math.imul and `| 0` give Pillow's values exactly while keeping V8 on int32 code.
//
// Why unrolled: a loop over a per-output tap count costs more than the multiplications it runs
// (about 2x for the 500x375 -> 256 crop). `fixedTapKernel` gives every output the same number of
// taps (4, 6 or 8: a bicubic downscale by less than 2, which is what the ADM crop does after its BOX
// halvings, reads at most 8 inputs; an upscale reads 4) by sliding edge windows inward with zero
// weights, which adds 0 to the sum and so changes nothing.
import type { RgbImage } from './rgb-image.ts';

/** Fraction bits of the weights: 32 bits minus 8 for the result, minus 2 of headroom for bicubic's negative lobes. */
export const PRECISION_BITS = 22;
/** 0.5 in fixed point: every sum starts here, so the final shift rounds instead of truncating. */
export const HALF = 1 << (PRECISION_BITS - 1);

/** For each output pixel along one axis: which input pixels it reads and their fixed-point weights. */
export interface ResampleKernel {
  /** Weights stored per output pixel (Pillow's ksize); only the first `count[i]` are used. */
  taps: number;
  /** First input pixel read by each output pixel. */
  first: Int32Array;
  count: Int32Array;
  weights: Int32Array;
}

/** clip8 as a table: index (sum >> 22) + 512 covers every int32 sum. */
const CLIP = new Uint8Array(1024);
for (let i = 0; i < 1024; i++) CLIP[i] = Math.min(255, Math.max(0, i - 512));
const CLIP_OFFSET = 512;

/** The unrolled loops below exist for these tap counts. */
const UNROLLED_TAPS = [4, 6, 8] as const;

/**
 * The kernel with exactly `taps` weights per output (`count` all equal to `taps`), windows kept inside
 * [0, inputSize); null when no unrolled size fits (more than 8 taps, or an input narrower than the taps).
 */
export function fixedTapKernel(kernel: ResampleKernel, inputSize: number): ResampleKernel | null {
  let widest = 0;
  for (let i = 0; i < kernel.count.length; i++) widest = Math.max(widest, kernel.count[i]!);
  const taps = UNROLLED_TAPS.find((t) => t >= widest);
  if (taps === undefined || taps > inputSize) return null;
  const outputs = kernel.first.length;
  const first = new Int32Array(outputs);
  const weights = new Int32Array(outputs * taps);
  for (let out = 0; out < outputs; out++) {
    const start = Math.min(kernel.first[out]!, inputSize - taps);
    const shift = kernel.first[out]! - start;
    first[out] = start;
    for (let i = 0; i < kernel.count[out]!; i++) weights[out * taps + shift + i] = kernel.weights[out * kernel.taps + i]!;
  }
  return { taps, first, count: new Int32Array(outputs).fill(taps), weights };
}

/** Horizontal pass over rows [rowStart, rowEnd): one output pixel per kernel entry. */
export function resampleRows(image: RgbImage, rowStart: number, rowEnd: number, kernel: ResampleKernel): RgbImage {
  const fixed = fixedTapKernel(kernel, image.width);
  const outWidth = kernel.first.length;
  const height = rowEnd - rowStart;
  const out = new Uint8Array(outWidth * height * 3);
  const rows = fixed?.taps === 4 ? rows4 : fixed?.taps === 6 ? rows6 : fixed?.taps === 8 ? rows8 : rowsAnyTaps;
  rows(image.data, image.width * 3, rowStart, rowEnd, fixed ?? kernel, out);
  return { data: out, width: outWidth, height };
}

/** Vertical pass over every column: one output row per kernel entry. */
export function resampleColumns(image: RgbImage, kernel: ResampleKernel): RgbImage {
  const fixed = fixedTapKernel(kernel, image.height);
  const rowBytes = image.width * 3;
  const out = new Uint8Array(rowBytes * kernel.first.length);
  const columns = fixed?.taps === 4 ? columns4 : fixed?.taps === 6 ? columns6 : fixed?.taps === 8 ? columns8 : columnsAnyTaps;
  columns(image.data, rowBytes, fixed ?? kernel, out);
  return { data: out, width: image.width, height: kernel.first.length };
}

type RowsPass = (src: Uint8Array, rowIn: number, rowStart: number, rowEnd: number, kernel: ResampleKernel, out: Uint8Array) => void;
type ColumnsPass = (src: Uint8Array, rowBytes: number, kernel: ResampleKernel, out: Uint8Array) => void;

const rowsAnyTaps: RowsPass = (src, rowIn, rowStart, rowEnd, { taps, first, count, weights }, out) => {
  let o = 0;
  for (let y = rowStart; y < rowEnd; y++) {
    const row = y * rowIn;
    for (let x = 0; x < first.length; x++) {
      const k = x * taps;
      const n = count[x]!;
      let p = row + first[x]! * 3;
      let r = HALF;
      let g = HALF;
      let b = HALF;
      for (let i = 0; i < n; i++, p += 3) {
        const w = weights[k + i]!;
        r = (r + Math.imul(src[p]!, w)) | 0;
        g = (g + Math.imul(src[p + 1]!, w)) | 0;
        b = (b + Math.imul(src[p + 2]!, w)) | 0;
      }
      out[o++] = CLIP[(r >> PRECISION_BITS) + CLIP_OFFSET]!;
      out[o++] = CLIP[(g >> PRECISION_BITS) + CLIP_OFFSET]!;
      out[o++] = CLIP[(b >> PRECISION_BITS) + CLIP_OFFSET]!;
    }
  }
};

const rows4: RowsPass = (src, rowIn, rowStart, rowEnd, { first, weights }, out) => {
  let o = 0;
  for (let y = rowStart; y < rowEnd; y++) {
    const row = y * rowIn;
    for (let x = 0, k = 0; x < first.length; x++, k += 4) {
      const p = row + first[x]! * 3;
      const w0 = weights[k]!, w1 = weights[k + 1]!, w2 = weights[k + 2]!, w3 = weights[k + 3]!;
      // Written out per channel: a loop over the three costs a fifth of the pass.
      const r = (HALF + Math.imul(src[p]!, w0) + Math.imul(src[p + 3]!, w1) + Math.imul(src[p + 6]!, w2) + Math.imul(src[p + 9]!, w3)) | 0;
      const g = (HALF + Math.imul(src[p + 1]!, w0) + Math.imul(src[p + 4]!, w1) + Math.imul(src[p + 7]!, w2) + Math.imul(src[p + 10]!, w3)) | 0;
      const b = (HALF + Math.imul(src[p + 2]!, w0) + Math.imul(src[p + 5]!, w1) + Math.imul(src[p + 8]!, w2) + Math.imul(src[p + 11]!, w3)) | 0;
      out[o] = CLIP[(r >> PRECISION_BITS) + CLIP_OFFSET]!;
      out[o + 1] = CLIP[(g >> PRECISION_BITS) + CLIP_OFFSET]!;
      out[o + 2] = CLIP[(b >> PRECISION_BITS) + CLIP_OFFSET]!;
      o += 3;
    }
  }
};

const rows6: RowsPass = (src, rowIn, rowStart, rowEnd, { first, weights }, out) => {
  let o = 0;
  for (let y = rowStart; y < rowEnd; y++) {
    const row = y * rowIn;
    for (let x = 0, k = 0; x < first.length; x++, k += 6) {
      const p = row + first[x]! * 3;
      const w0 = weights[k]!, w1 = weights[k + 1]!, w2 = weights[k + 2]!, w3 = weights[k + 3]!;
      const w4 = weights[k + 4]!, w5 = weights[k + 5]!;
      // Written out per channel: a loop over the three costs a fifth of the pass.
      const r = (HALF + Math.imul(src[p]!, w0) + Math.imul(src[p + 3]!, w1) + Math.imul(src[p + 6]!, w2) + Math.imul(src[p + 9]!, w3) + Math.imul(src[p + 12]!, w4) + Math.imul(src[p + 15]!, w5)) | 0;
      const g = (HALF + Math.imul(src[p + 1]!, w0) + Math.imul(src[p + 4]!, w1) + Math.imul(src[p + 7]!, w2) + Math.imul(src[p + 10]!, w3) + Math.imul(src[p + 13]!, w4) + Math.imul(src[p + 16]!, w5)) | 0;
      const b = (HALF + Math.imul(src[p + 2]!, w0) + Math.imul(src[p + 5]!, w1) + Math.imul(src[p + 8]!, w2) + Math.imul(src[p + 11]!, w3) + Math.imul(src[p + 14]!, w4) + Math.imul(src[p + 17]!, w5)) | 0;
      out[o] = CLIP[(r >> PRECISION_BITS) + CLIP_OFFSET]!;
      out[o + 1] = CLIP[(g >> PRECISION_BITS) + CLIP_OFFSET]!;
      out[o + 2] = CLIP[(b >> PRECISION_BITS) + CLIP_OFFSET]!;
      o += 3;
    }
  }
};

const rows8: RowsPass = (src, rowIn, rowStart, rowEnd, { first, weights }, out) => {
  let o = 0;
  for (let y = rowStart; y < rowEnd; y++) {
    const row = y * rowIn;
    for (let x = 0, k = 0; x < first.length; x++, k += 8) {
      const p = row + first[x]! * 3;
      const w0 = weights[k]!, w1 = weights[k + 1]!, w2 = weights[k + 2]!, w3 = weights[k + 3]!;
      const w4 = weights[k + 4]!, w5 = weights[k + 5]!, w6 = weights[k + 6]!, w7 = weights[k + 7]!;
      // Written out per channel: a loop over the three costs a fifth of the pass.
      const r = (HALF + Math.imul(src[p]!, w0) + Math.imul(src[p + 3]!, w1) + Math.imul(src[p + 6]!, w2) + Math.imul(src[p + 9]!, w3) + Math.imul(src[p + 12]!, w4) + Math.imul(src[p + 15]!, w5) + Math.imul(src[p + 18]!, w6) + Math.imul(src[p + 21]!, w7)) | 0;
      const g = (HALF + Math.imul(src[p + 1]!, w0) + Math.imul(src[p + 4]!, w1) + Math.imul(src[p + 7]!, w2) + Math.imul(src[p + 10]!, w3) + Math.imul(src[p + 13]!, w4) + Math.imul(src[p + 16]!, w5) + Math.imul(src[p + 19]!, w6) + Math.imul(src[p + 22]!, w7)) | 0;
      const b = (HALF + Math.imul(src[p + 2]!, w0) + Math.imul(src[p + 5]!, w1) + Math.imul(src[p + 8]!, w2) + Math.imul(src[p + 11]!, w3) + Math.imul(src[p + 14]!, w4) + Math.imul(src[p + 17]!, w5) + Math.imul(src[p + 20]!, w6) + Math.imul(src[p + 23]!, w7)) | 0;
      out[o] = CLIP[(r >> PRECISION_BITS) + CLIP_OFFSET]!;
      out[o + 1] = CLIP[(g >> PRECISION_BITS) + CLIP_OFFSET]!;
      out[o + 2] = CLIP[(b >> PRECISION_BITS) + CLIP_OFFSET]!;
      o += 3;
    }
  }
};

const columnsAnyTaps: ColumnsPass = (src, rowBytes, { taps, first, count, weights }, out) => {
  // Summing tap by tap over whole rows reads memory in order; integer sums are order-independent.
  const sums = new Int32Array(rowBytes);
  for (let y = 0; y < first.length; y++) {
    sums.fill(HALF);
    const k = y * taps;
    for (let i = 0; i < count[y]!; i++) {
      const w = weights[k + i]!;
      const row = (first[y]! + i) * rowBytes;
      for (let j = 0; j < rowBytes; j++) sums[j] = (sums[j]! + Math.imul(src[row + j]!, w)) | 0;
    }
    const o = y * rowBytes;
    for (let j = 0; j < rowBytes; j++) out[o + j] = CLIP[(sums[j]! >> PRECISION_BITS) + CLIP_OFFSET]!;
  }
};

const columns4: ColumnsPass = (src, rowBytes, { first, weights }, out) => {
  for (let y = 0, k = 0; y < first.length; y++, k += 4) {
    const p0 = first[y]! * rowBytes, p1 = p0 + rowBytes, p2 = p1 + rowBytes, p3 = p2 + rowBytes;
    const w0 = weights[k]!, w1 = weights[k + 1]!, w2 = weights[k + 2]!, w3 = weights[k + 3]!;
    const o = y * rowBytes;
    for (let j = 0; j < rowBytes; j++) {
      const sum = (HALF + Math.imul(src[p0 + j]!, w0) + Math.imul(src[p1 + j]!, w1) + Math.imul(src[p2 + j]!, w2) + Math.imul(src[p3 + j]!, w3)) | 0;
      out[o + j] = CLIP[(sum >> PRECISION_BITS) + CLIP_OFFSET]!;
    }
  }
};

const columns6: ColumnsPass = (src, rowBytes, { first, weights }, out) => {
  for (let y = 0, k = 0; y < first.length; y++, k += 6) {
    const p0 = first[y]! * rowBytes, p1 = p0 + rowBytes, p2 = p1 + rowBytes, p3 = p2 + rowBytes, p4 = p3 + rowBytes, p5 = p4 + rowBytes;
    const w0 = weights[k]!, w1 = weights[k + 1]!, w2 = weights[k + 2]!, w3 = weights[k + 3]!, w4 = weights[k + 4]!, w5 = weights[k + 5]!;
    const o = y * rowBytes;
    for (let j = 0; j < rowBytes; j++) {
      const sum =
        (HALF + Math.imul(src[p0 + j]!, w0) + Math.imul(src[p1 + j]!, w1) + Math.imul(src[p2 + j]!, w2) +
          Math.imul(src[p3 + j]!, w3) + Math.imul(src[p4 + j]!, w4) + Math.imul(src[p5 + j]!, w5)) | 0;
      out[o + j] = CLIP[(sum >> PRECISION_BITS) + CLIP_OFFSET]!;
    }
  }
};

const columns8: ColumnsPass = (src, rowBytes, { first, weights }, out) => {
  for (let y = 0, k = 0; y < first.length; y++, k += 8) {
    const p0 = first[y]! * rowBytes, p1 = p0 + rowBytes, p2 = p1 + rowBytes, p3 = p2 + rowBytes;
    const p4 = p3 + rowBytes, p5 = p4 + rowBytes, p6 = p5 + rowBytes, p7 = p6 + rowBytes;
    const w0 = weights[k]!, w1 = weights[k + 1]!, w2 = weights[k + 2]!, w3 = weights[k + 3]!;
    const w4 = weights[k + 4]!, w5 = weights[k + 5]!, w6 = weights[k + 6]!, w7 = weights[k + 7]!;
    const o = y * rowBytes;
    for (let j = 0; j < rowBytes; j++) {
      const sum =
        (HALF + Math.imul(src[p0 + j]!, w0) + Math.imul(src[p1 + j]!, w1) + Math.imul(src[p2 + j]!, w2) + Math.imul(src[p3 + j]!, w3) +
          Math.imul(src[p4 + j]!, w4) + Math.imul(src[p5 + j]!, w5) + Math.imul(src[p6 + j]!, w6) + Math.imul(src[p7 + j]!, w7)) | 0;
      out[o + j] = CLIP[(sum >> PRECISION_BITS) + CLIP_OFFSET]!;
    }
  }
};
