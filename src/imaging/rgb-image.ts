// The in-memory picture every imaging step passes along: packed 8-bit RGB, rows top to bottom (HWC).

export interface RgbImage {
  /** width * height * 3 bytes, R G B per pixel, no padding between rows. */
  data: Uint8Array;
  width: number;
  height: number;
}

export function rgbImage(data: Uint8Array, width: number, height: number): RgbImage {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new RangeError(`image size must be positive integers, got ${width}x${height}`);
  }
  if (data.length !== width * height * 3) {
    throw new RangeError(`RGB ${width}x${height} needs ${width * height * 3} bytes, got ${data.length}`);
  }
  return { data, width, height };
}
