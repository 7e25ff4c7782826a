// Decoder output (float32 CHW, nominally [-1,1]) to 8-bit RGB, and 8-bit RGB to PNG, JPEG or WebP bytes.
import sharp from 'sharp';

export const IMAGE_FORMATS = ['png', 'jpeg', 'webp'] as const;
export type ImageFormat = (typeof IMAGE_FORMATS)[number];

export const CONTENT_TYPES: Record<ImageFormat, string> = {
  png: 'image/png',
  jpeg: 'image/jpeg',
  webp: 'image/webp',
};

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

/** rgb: height*width*3 bytes, HWC. */
export async function encodeRgb8(rgb: Uint8Array, height: number, width: number, format: ImageFormat, quality?: number): Promise<Buffer> {
  const image = sharp(rgb, { raw: { width, height, channels: 3 } });
  switch (format) {
    case 'png':
      return image.png({ compressionLevel: 6 }).toBuffer();
    case 'jpeg':
      return image.jpeg({ quality: quality ?? 90 }).toBuffer();
    case 'webp':
      return image.webp(quality === 100 ? { lossless: true } : { quality: quality ?? 90 }).toBuffer();
  }
}
