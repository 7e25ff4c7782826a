// The in-memory picture every imaging step passes along: packed 8-bit RGB, rows top to bottom (HWC).

export interface RgbImage {
  /** width * height * 3 bytes, R G B per pixel, no padding between rows. */
  data: Uint8Array;
  width: number;
  height: number;
}
