// Pillow's 8-bit resampling passes (horizontal, vertical, exact BOX halving) in WebAssembly SIMD; built to src/imaging/pil-resample.wasm.
//
// Same integer arithmetic as Pillow's ImagingResampleHorizontal/Vertical_8bpc: per output value a
// 32-bit sum from 1 << 21 of input byte * fixed-point weight, shifted right by 22 (arithmetic, so a
// floor), clipped to 0..255. Integer sums do not depend on the order of the additions, so adding
// four channels or four columns per instruction gives Pillow's bytes exactly. The clip is two
// saturating narrowings (i32 -> i16 signed, i16 -> u8 unsigned): the shifted sum lies well inside
// i16, so only the 0..255 clamp has any effect.
//
// The caller (src/imaging/pil-resample-wasm.ts) owns the memory layout: it passes byte offsets and
// leaves at least SLACK bytes after every buffer, because vector loads and stores run up to 15 bytes
// past the last pixel (into bytes that are never read back as results, or rewritten later).
//
// Build: npm run build:wasm (asc, exact-pinned devDependency); test/wasm-build.test.ts checks that
// the committed .wasm is what this source compiles to.

/** Fraction bits of Pillow's fixed-point weights. */
const PRECISION_BITS: i32 = 22;
const HALF: i32 = 1 << (PRECISION_BITS - 1);

/** Start of the memory the caller may use: everything below belongs to this module. */
export function heapBase(): usize {
  return (__heap_base + 15) & ~15;
}

/** i32 lanes [r, g, b, x] to bytes (clipped), r g b in the low three bytes of lane 0 of the result. */
// @ts-ignore: decorator
@inline function clipToBytes(sum: v128): v128 {
  const shifted = i32x4.shr_s(sum, PRECISION_BITS);
  const words = i16x8.narrow_i32x4_s(shifted, shifted);
  return i8x16.narrow_i16x8_u(words, words);
}

/** Weights are split as w = (high << SPLIT_BITS) + low, low in 0..2047, so both halves fit i16 lanes. */
const SPLIT_BITS: i32 = 11;

/**
 * Horizontal pass. For each of `rowCount` rows of `src` (stride `srcStride` bytes) and each output
 * pixel x < outWidth: the pixels first[x] .. first[x] + count[x] - 1 of that row, weighted by
 * weights[x * taps + i]. Output rows are outWidth * 3 bytes, packed. `scratch` holds
 * outWidth * ((taps + 1) >> 1) * 32 bytes for the split weights.
 *
 * One output pixel at a time, two taps per i32x4.dot_i16x8_s: the two pixels' bytes as i16 lanes
 * [r0 r1 g0 g1 b0 b1 0 0] times [w0 w1 w0 w1 ...] gives [r g b 0] sums of both taps. The 22-bit
 * weights do not fit i16, so each is split in a high and a low half and the pass keeps two sums:
 * (high sum << 11) + low sum is the integer Pillow computes (no overflow: every partial sum is
 * bounded by the full one plus 255 * 2047 * taps).
 */
export function resampleRows(
  src: usize, srcStride: i32, rowCount: i32,
  first: usize, count: usize, weights: usize, taps: i32, outWidth: i32,
  out: usize, scratch: usize,
): void {
  const pairs = (taps + 1) >> 1;
  const pairBytes = <usize>pairs << 5;
  const lowMask = i32x4.splat((1 << SPLIT_BITS) - 1);
  for (let x = 0; x < outWidth; x++) {
    const n = load<i32>(count + (<usize>x << 2));
    const w = weights + (<usize>(x * taps) << 2);
    let s = scratch + <usize>x * pairBytes;
    for (let i = 0; i < n; i += 2) {
      const w0 = load<i32>(w + (<usize>i << 2));
      const w1 = i + 1 < n ? load<i32>(w + (<usize>i << 2), 4) : 0;
      const both = i32x4(w0, w1, w0, w1);
      const high = i32x4.shr_s(both, SPLIT_BITS);
      const low = v128.and(both, lowMask);
      v128.store(s, i16x8.narrow_i32x4_s(high, high));
      v128.store(s, i16x8.narrow_i32x4_s(low, low), 16);
      s += 32;
    }
  }
  const widen = i8x16(0, -1, 3, -1, 1, -1, 4, -1, 2, -1, 5, -1, -1, -1, -1, -1);
  for (let y = 0; y < rowCount; y++) {
    const row = src + <usize>y * <usize>srcStride;
    let o = out + <usize>y * <usize>(outWidth * 3);
    let k = scratch;
    for (let x = 0; x < outWidth; x++) {
      const xOffset = <usize>x << 2;
      let p = row + <usize>load<i32>(first + xOffset) * 3;
      const n = load<i32>(count + xOffset);
      let high = i32x4.splat(0);
      let low = i32x4.splat(0);
      let s = k;
      for (let i = 0; i < n; i += 2) {
        const pixels = i8x16.swizzle(v128.load64_zero(p), widen);
        high = i32x4.add(high, i32x4.dot_i16x8_s(pixels, v128.load(s)));
        low = i32x4.add(low, i32x4.dot_i16x8_s(pixels, v128.load(s, 16)));
        p += 6;
        s += 32;
      }
      const sum = i32x4.add(i32x4.add(i32x4.shl(high, SPLIT_BITS), low), i32x4.splat(HALF));
      v128.store32_lane(o, clipToBytes(sum), 0);
      o += 3;
      k += pairBytes;
    }
  }
}

/**
 * Vertical pass. For each output row y < outRows: rows first[y] .. first[y] + count[y] - 1 of `src`
 * (stride `srcStride`), `rowBytes` bytes of each, weighted by weights[y * taps + i]. Output rows are
 * rowBytes bytes, packed.
 *
 * Sixteen bytes (columns x channels) at a time, as four i32x4 sums, tap by tap: every load is a
 * whole vector of one input row.
 */
export function resampleColumns(
  src: usize, srcStride: i32, rowBytes: i32,
  first: usize, count: usize, weights: usize, taps: i32, outRows: i32,
  out: usize,
): void {
  const half = i32x4.splat(HALF);
  for (let y = 0; y < outRows; y++) {
    const yOffset = <usize>y << 2;
    const top = src + <usize>load<i32>(first + yOffset) * <usize>srcStride;
    const n = load<i32>(count + yOffset);
    const w = weights + (<usize>(y * taps) << 2);
    const o = out + <usize>y * <usize>rowBytes;
    for (let j = 0; j < rowBytes; j += 16) {
      let s0 = half, s1 = half, s2 = half, s3 = half;
      let p = top + <usize>j;
      for (let i = 0; i < n; i++) {
        const weight = i32x4.splat(load<i32>(w + (<usize>i << 2)));
        const bytes = v128.load(p);
        const low = i16x8.extend_low_i8x16_u(bytes);
        const high = i16x8.extend_high_i8x16_u(bytes);
        s0 = i32x4.add(s0, i32x4.mul(i32x4.extend_low_i16x8_u(low), weight));
        s1 = i32x4.add(s1, i32x4.mul(i32x4.extend_high_i16x8_u(low), weight));
        s2 = i32x4.add(s2, i32x4.mul(i32x4.extend_low_i16x8_u(high), weight));
        s3 = i32x4.add(s3, i32x4.mul(i32x4.extend_high_i16x8_u(high), weight));
        p += <usize>srcStride;
      }
      const words0 = i16x8.narrow_i32x4_s(i32x4.shr_s(s0, PRECISION_BITS), i32x4.shr_s(s1, PRECISION_BITS));
      const words1 = i16x8.narrow_i32x4_s(i32x4.shr_s(s2, PRECISION_BITS), i32x4.shr_s(s3, PRECISION_BITS));
      v128.store(o + <usize>j, i8x16.narrow_i16x8_u(words0, words1));
    }
  }
}

/**
 * Both passes of an exact BOX halving (every output the 50/50 mix of two inputs on each axis). With
 * weights of 0.5, Pillow's (HALF + (a + b) * HALF) >> 22 is (a + b + 1) >> 1, which is i8x16.avgr_u;
 * each pass rounds on its own, horizontal first: avg(avg(a, b), avg(c, d)).
 *
 * `src` is the top-left input pixel. Three output pixels per round: bytes k and k + 3 averaged give,
 * at k = 6x + c, output pixel x's channel c; a swizzle packs those nine bytes to the front.
 */
export function halvePairs(src: usize, srcStride: i32, outWidth: i32, outHeight: i32, out: usize): void {
  const pack = i8x16(0, 1, 2, 6, 7, 8, 12, 13, 14, -1, -1, -1, -1, -1, -1, -1);
  const rowOut = outWidth * 3;
  for (let y = 0; y < outHeight; y++) {
    let a = src + <usize>(2 * y) * <usize>srcStride;
    let b = a + <usize>srcStride;
    let o = out + <usize>y * <usize>rowOut;
    const end = o + <usize>rowOut;
    while (o < end) {
      const top = i8x16.avgr_u(v128.load(a), v128.load(a, 3));
      const bottom = i8x16.avgr_u(v128.load(b), v128.load(b, 3));
      v128.store(o, i8x16.swizzle(i8x16.avgr_u(top, bottom), pack));
      a += 18;
      b += 18;
      o += 9;
    }
  }
}
