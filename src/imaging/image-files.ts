// Which files are images: the trainer's list of extensions (fqgan/images.py IMAGE_EXTENSIONS), and those sharp reads.
import path from 'node:path';

/** Every extension the trainer (and the CLI's folder walk) takes as an image. */
export const IMAGE_EXTENSIONS: ReadonlySet<string> = new Set(['.jpg', '.jpeg', '.png', '.webp', '.bmp', '.gif', '.tif', '.tiff', '.ppm', '.pgm']);
/** The subset sharp decodes: all but BMP and PPM/PGM. */
export const SHARP_READABLE_EXTENSIONS: ReadonlySet<string> = new Set(['.jpg', '.jpeg', '.png', '.webp', '.gif', '.tif', '.tiff']);

/** True when the file name's extension (any case) is an image's. */
export function isImageFile(name: string): boolean {
  return IMAGE_EXTENSIONS.has(path.extname(name).toLowerCase());
}

/** True when sharp can decode the file, judged by its extension. */
export function isSharpReadable(name: string): boolean {
  return SHARP_READABLE_EXTENSIONS.has(path.extname(name).toLowerCase());
}
