// Test images made with sharp: smooth gradients with some structure, in any size and format.
import sharp from 'sharp';

export function gradientRgb(width: number, height: number, seed = 0): Buffer {
  const out = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3;
      out[i] = (x * 255) / Math.max(1, width - 1);
      out[i + 1] = (y * 255) / Math.max(1, height - 1);
      out[i + 2] = 128 + 100 * Math.sin((x + y + seed * 37) / 9);
    }
  }
  return out;
}

export async function makeImage(width: number, height: number, format: 'png' | 'jpeg' | 'webp' = 'png', seed = 0): Promise<Buffer> {
  const image = sharp(gradientRgb(width, height, seed), { raw: { width, height, channels: 3 } });
  return format === 'png' ? image.png().toBuffer() : format === 'jpeg' ? image.jpeg({ quality: 90 }).toBuffer() : image.webp().toBuffer();
}
