// 8-bit RGB to image file bytes (PNG, JPEG or WebP): the mirror of read-image.ts.
import sharp from 'sharp';

export const IMAGE_FORMATS = ['png', 'jpeg', 'webp'] as const;
export type ImageFormat = (typeof IMAGE_FORMATS)[number];

export const CONTENT_TYPES: Record<ImageFormat, string> = {
  png: 'image/png',
  jpeg: 'image/jpeg',
  webp: 'image/webp',
};

/** rgb: height*width*3 bytes, HWC. */
export async function writeImage(rgb: Uint8Array, height: number, width: number, format: ImageFormat, quality?: number): Promise<Buffer> {
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
