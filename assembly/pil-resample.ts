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

/**
 * Horizontal pass. For each of `rowCount` rows of `src` (stride `srcStride` bytes) and each output
 * pixel x < outWidth: the pixels first[x] .. first[x] + count[x] - 1 of that row, weighted by
 * weights[x * taps + i]. Output rows are outWidth * 3 bytes, packed.
 *
 * One output pixel at a time, its three channels (and one spare byte) in one i32x4: each tap is one
 * 4-byte load, one swizzle (bytes to zero-extended i32 lanes), one multiply and one add.
 */
export function resampleRows(
  src: usize, srcStride: i32, rowCount: i32,
  first: usize, count: usize, weights: usize, taps: i32, outWidth: i32,
  out: usize,
): void {
  const widen = i8x16(0, -1, -1, -1, 1, -1, -1, -1, 2, -1, -1, -1, 3, -1, -1, -1);
  const half = i32x4.splat(HALF);
  const tapBytes = <usize>taps << 2;
  for (let y = 0; y < rowCount; y++) {
    const row = src + <usize>y * <usize>srcStride;
    let o = out + <usize>y * <usize>(outWidth * 3);
    let k = weights;
    for (let x = 0; x < outWidth; x++) {
      const xOffset = <usize>x << 2;
      let p = row + <usize>load<i32>(first + xOffset) * 3;
      const n = load<i32>(count + xOffset);
      let acc = half;
      let w = k;
      // Two taps per round while they last: fewer loop tests, two independent multiply chains.
      let i = 0;
      for (; i + 1 < n; i += 2) {
        const a = i8x16.swizzle(v128.load32_zero(p), widen);
        const b = i8x16.swizzle(v128.load32_zero(p, 3), widen);
        acc = i32x4.add(acc, i32x4.add(i32x4.mul(a, i32x4.splat(load<i32>(w))), i32x4.mul(b, i32x4.splat(load<i32>(w, 4)))));
        p += 6;
        w += 8;
      }
      if (i < n) {
        const a = i8x16.swizzle(v128.load32_zero(p), widen);
        acc = i32x4.add(acc, i32x4.mul(a, i32x4.splat(load<i32>(w))));
      }
      v128.store32_lane(o, clipToBytes(acc), 0);
      o += 3;
      k += tapBytes;
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
