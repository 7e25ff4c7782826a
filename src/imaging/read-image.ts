// Image bytes -> 8-bit RGB exactly as the reference's `Image.open(f).convert('RGB')` (Pillow) produces it.
//
// Measured against Pillow 9.4 (test/preprocess.test.ts): libvips' JPEG (libjpeg-turbo, default
// settings), PNG and WebP decoders give Pillow's bytes once embedded ICC profiles are ignored, which
// Pillow never applies. The conversions to RGB are Pillow's: alpha is dropped (not composited),
// grey is replicated, palettes are looked up, 16-bit RGB keeps the high byte, CMYK uses Pillow's
// naive ink formula. One deliberate difference: 16-bit greyscale keeps the high byte where Pillow
// clips every value above 255 to white (docs/preprocessing.md).
import sharp, { type Metadata, type Sharp } from 'sharp';
import { FqError } from '../errors.ts';
import type { RgbImage } from './rgb-image.ts';

/** `ignore` is the reference's behaviour (Pillow does not rotate); `exif` turns the image upright first. */
export const ORIENTATIONS = ['ignore', 'exif'] as const;
export type Orientation = (typeof ORIENTATIONS)[number];

export interface ReadImageOptions {
  orientation: Orientation;
  /** Images with more pixels (width * height, from the header) are refused before decoding. */
  maxInputPixels: number;
}

/** Reads the size from the header alone and refuses empty, headerless or too large images, before any decode. */
export async function checkedHeader(input: Uint8Array, maxInputPixels: number): Promise<Header> {
  if (input.length === 0) throw new FqError('bad_image', 'the image is empty (0 bytes)');
  const header = await readHeader(input);
  const pixels = header.width * header.height;
  if (pixels > maxInputPixels) {
    throw new FqError('too_large', `the image is ${header.width}x${header.height} (${pixels} pixels), over the limit of ${maxInputPixels}`);
  }
  return header;
}

export async function readImage(input: Uint8Array, options: ReadImageOptions): Promise<RgbImage> {
  const header = await checkedHeader(input, options.maxInputPixels);
  try {
    if (header.space === 'cmyk') return await readCmyk(input, options);
    return await readRgb(input, options);
  } catch (err) {
    throw asUnreadable(err);
  }
}

export interface Header {
  format: string;
  width: number;
  height: number;
  space: string;
}

async function readHeader(input: Uint8Array): Promise<Header> {
  let metadata: Metadata;
  try {
    // Header only, so no limit is needed here; the size check below gives the clearer message.
    metadata = await sharp(input, { limitInputPixels: false }).metadata();
  } catch (err) {
    throw new FqError('bad_image', `not a decodable image: ${errorText(err)}`, { cause: err });
  }
  const { format, width, height, space } = metadata;
  if (!format || !width || !height) throw new FqError('bad_image', 'not a decodable image: no size in its header');
  return { format, width, height, space: space ?? '' };
}

function reader(input: Uint8Array, options: ReadImageOptions): Sharp {
  const image = sharp(input, {
    // Pillow never applies embedded profiles; applying one changes most bytes of a photo.
    ignoreIcc: true,
    // Pillow refuses truncated files but decodes through libjpeg's corrupt-data warnings.
    failOn: 'truncated',
    // A second guard in case the header lied about the size.
    limitInputPixels: options.maxInputPixels,
  });
  return options.orientation === 'exif' ? image.autoOrient() : image;
}

/** Every non-CMYK input: libvips' sRGB conversion replicates grey and takes 16-bit high bytes. */
async function readRgb(input: Uint8Array, options: ReadImageOptions): Promise<RgbImage> {
  const { data, info } = await reader(input, options)
    .removeAlpha()
    .toColourspace('srgb')
    .raw({ depth: 'uchar' })
    .toBuffer({ resolveWithObject: true });
  if (info.channels !== 3) throw new FqError('bad_image', `decoded to ${info.channels} channels, expected RGB`);
  return { data: asUint8(data), width: info.width, height: info.height };
}

/**
 * CMYK: the raw inks (no ICC transform), then Pillow's cmyk2rgb. Like Pillow, libvips reads CMYK
 * JPEGs as Adobe-inverted whether or not the APP14 marker says so (tested with and without it).
 */
async function readCmyk(input: Uint8Array, options: ReadImageOptions): Promise<RgbImage> {
  const { data, info } = await reader(input, options)
    .pipelineColourspace('cmyk')
    .removeAlpha()
    .toColourspace('cmyk')
    .raw({ depth: 'uchar' })
    .toBuffer({ resolveWithObject: true });
  if (info.channels !== 4) throw new FqError('bad_image', `CMYK image decoded to ${info.channels} channels`);
  return { data: cmykToRgb(data), width: info.width, height: info.height };
}

/** Pillow's cmyk2rgb: each channel is (255 - K) - ink * (255 - K) / 255, with Pillow's rounding divide. */
export function cmykToRgb(cmyk: Uint8Array): Uint8Array {
  const pixels = cmyk.length / 4;
  const rgb = new Uint8Array(pixels * 3);
  for (let i = 0; i < pixels; i++) {
    const k = 255 - cmyk[i * 4 + 3]!;
    rgb[i * 3] = k - mulDiv255(cmyk[i * 4]!, k);
    rgb[i * 3 + 1] = k - mulDiv255(cmyk[i * 4 + 1]!, k);
    rgb[i * 3 + 2] = k - mulDiv255(cmyk[i * 4 + 2]!, k);
  }
  return rgb;
}

/** a * b / 255 rounded, the way Pillow's MULDIV255 computes it. */
function mulDiv255(a: number, b: number): number {
  const t = a * b + 128;
  return ((t >> 8) + t) >> 8;
}

function asUint8(buffer: Buffer): Uint8Array {
  return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
}

function asUnreadable(err: unknown): FqError {
  if (err instanceof FqError) return err;
  const text = errorText(err);
  if (/pixel limit/i.test(text)) return new FqError('too_large', `the image is over the pixel limit: ${text}`, { cause: err });
  return new FqError('bad_image', `the image could not be decoded: ${text}`, { cause: err });
}

function errorText(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0]!.trim();
}
