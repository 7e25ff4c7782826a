// Decoder output (float32 CHW, nominally [-1,1]) to 8-bit RGB, as the reference maps it.

/** Clamps to [-1,1] and maps to 8 bits as the reference does: floor(127.5*x + 128), HWC order. */
export function chwToRgb8(chw: Float32Array, height: number, width: number): Uint8Array {
  const plane = height * width;
  const out = new Uint8Array(plane * 3);
  for (let c = 0; c < 3; c++) {
    const base = c * plane;
    for (let i = 0; i < plane; i++) {
      const x = chw[base + i]!;
      const v = Math.floor(127.5 * (x > 1 ? 1 : x < -1 ? -1 : x) + 128);
      out[i * 3 + c] = v > 255 ? 255 : v;
    }
  }
  return out;
}
