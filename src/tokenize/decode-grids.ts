// Decode grids: admission (one per grid) -> deadline -> grids checked against the model -> the model's
// decode queue (with the codebook mask) -> raw 8-bit RGB, or image files.
import { FqError } from '../errors.ts';
import { writeImage, type ImageFormat } from '../imaging/write-image.ts';
import type { TokenBatch } from '../backends/backend.ts';
import type { SubmitOptions } from '../serving/batcher.ts';
import type { ServedModel } from '../serving/served-model.ts';
import { withAdmission, type RequestLimits } from './admission.ts';
import { codebookMask, selectCodebooks } from './codebooks.ts';
import type { GridSet } from './token-layout.ts';

export interface DecodeGridsOptions {
  /** Codebooks to decode with; the others are masked to zero (partial decoding). All when undefined. */
  codebooks?: string[];
}

export interface DecodeImagesOptions extends DecodeGridsOptions {
  format: ImageFormat;
  quality?: number;
}

export interface DecodedRgb {
  /** count images, 8-bit RGB, HWC, one after another. */
  rgb: Uint8Array;
  height: number;
  width: number;
}

/** The admission unit of decoding: one grid per codebook makes one image. */
export const GRID_SETS = 'grid sets';

/** Grid index of flat position i, for error messages that point at the offending value. */
function locate(i: number, grid: readonly [number, number]): string {
  const cells = grid[0] * grid[1];
  const n = Math.floor(i / cells);
  const r = Math.floor((i % cells) / grid[1]);
  return `grid ${n}, row ${r}, column ${i % grid[1]}`;
}

/** Checks what the model needs: grid shape, every used codebook present, integer tokens in range. */
export function validateGrids(model: ServedModel, set: GridSet, codebooks: string[]): TokenBatch {
  const manifest = model.model.manifest;
  const [gh, gw] = manifest.grid;
  if (set.grid[0] !== gh || set.grid[1] !== gw) {
    throw new FqError('bad_tokens', `grids are ${set.grid[0]}x${set.grid[1]}; model ${model.label} takes ${gh}x${gw}`);
  }
  const expected = set.count * gh * gw;
  const out: TokenBatch = {};
  for (const codebook of manifest.codebooks) {
    if (!codebooks.includes(codebook.name)) {
      out[codebook.name] = new Int32Array(expected); // masked: its vectors are zeroed by the decoder
      continue;
    }
    const values = set.tokens[codebook.name];
    if (!values) throw new FqError('bad_tokens', `missing grids for codebook '${codebook.name}'`);
    if (values.length !== expected) {
      throw new FqError('bad_tokens', `codebook '${codebook.name}' has ${values.length} tokens, expected ${expected}`);
    }
    const ints = new Int32Array(expected);
    for (let i = 0; i < expected; i++) {
      const v = values[i]!;
      if (!Number.isInteger(v)) {
        throw new FqError('bad_tokens', `codebook '${codebook.name}', ${locate(i, set.grid)}: ${v} is not an integer`, {
          item: Math.floor(i / (gh * gw)),
        });
      }
      if (v < 0 || v >= codebook.size) {
        throw new FqError('bad_tokens', `codebook '${codebook.name}', ${locate(i, set.grid)}: ${v} is outside [0, ${codebook.size})`, {
          item: Math.floor(i / (gh * gw)),
        });
      }
      ints[i] = v;
    }
    out[codebook.name] = ints;
  }
  return out;
}

/** Runs checked tokens through the model's decode queue: the run step of every decode operation. */
export async function runDecode(model: ServedModel, tokens: TokenBatch, count: number, codebooks: string[], submit: SubmitOptions): Promise<DecodedRgb> {
  const { grid, downsample } = model.model.manifest;
  const rgb = await model.decode(tokens, count, grid, codebookMask(model, codebooks), submit);
  return { rgb, height: grid[0] * downsample, width: grid[1] * downsample };
}

/** Grids -> raw pixels (what an evaluation archive stores). */
export function decodeRgb(model: ServedModel, set: GridSet, options: DecodeGridsOptions, limits: RequestLimits = {}): Promise<DecodedRgb> {
  return withAdmission(model, 'decode', set.count, GRID_SETS, limits, async (admission) => {
    const codebooks = selectCodebooks(model, options.codebooks);
    const tokens = validateGrids(model, set, codebooks);
    return runDecode(model, tokens, set.count, codebooks, admission.submit);
  });
}

/** Grids -> one image file each (PNG, JPEG or WebP). */
export async function decodeGrids(model: ServedModel, set: GridSet, options: DecodeImagesOptions, limits: RequestLimits = {}): Promise<Buffer[]> {
  const { rgb, height, width } = await decodeRgb(model, set, options, limits);
  const perImage = 3 * height * width;
  return Promise.all(
    Array.from({ length: set.count }, (_, n) => writeImage(rgb.subarray(n * perImage, (n + 1) * perImage), height, width, options.format, options.quality)),
  );
}
