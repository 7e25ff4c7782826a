// Decode: validated token grids -> tokenizer (with the codebook mask) -> encoded image files.
import { FqError } from '../errors.ts';
import { encodeRgb8, type ImageFormat } from '../imaging/tensor-to-image.ts';
import type { TokenBatch } from '../backends/backend.ts';
import type { SubmitOptions } from '../serving/batcher.ts';
import { requestScope, type RequestLimits } from '../serving/request-scope.ts';
import type { ServedModel } from '../serving/served-model.ts';

export interface GridSet {
  /** Per codebook: count*h*w values, grid-major (C order of [count, h, w]). */
  tokens: Record<string, ArrayLike<number>>;
  count: number;
  grid: readonly [number, number];
}

export interface DecodeGridsOptions {
  /** Codebooks to decode with; the others are masked to zero (partial decoding). */
  codebooks: string[];
  format: ImageFormat;
  quality?: number;
}

/** Grid index of flat position i, for error messages that point at the offending value. */
function locate(i: number, grid: readonly [number, number]): string {
  const cells = grid[0] * grid[1];
  const n = Math.floor(i / cells);
  const r = Math.floor((i % cells) / grid[1]);
  return `grid ${n}, row ${r}, column ${i % grid[1]}`;
}

/** Checks what the model needs: grid shape, every used codebook present, integer tokens in range. */
export function validateGrids(tokenizer: ServedModel, set: GridSet, codebooks: string[]): TokenBatch {
  const manifest = tokenizer.model.manifest;
  const [gh, gw] = manifest.grid;
  if (set.grid[0] !== gh || set.grid[1] !== gw) {
    throw new FqError('bad_tokens', `grids are ${set.grid[0]}x${set.grid[1]}; model ${tokenizer.label} takes ${gh}x${gw}`);
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

export interface DecodedRgb {
  /** count images, 8-bit RGB, HWC, one after another. */
  rgb: Uint8Array;
  height: number;
  width: number;
}

/** Decodes validated tokens to raw pixels (what an evaluation archive stores). */
export async function decodeTokensRgb(
  tokenizer: ServedModel,
  tokens: TokenBatch,
  count: number,
  codebooks: string[],
  submit: SubmitOptions = {},
): Promise<DecodedRgb> {
  const grid = tokenizer.model.manifest.grid;
  const mask = Float32Array.from(tokenizer.codebookNames, (n) => (codebooks.includes(n) ? 1 : 0));
  const rgb = await tokenizer.decode(tokens, count, grid, mask, submit);
  const down = tokenizer.model.manifest.downsample;
  return { rgb, height: grid[0] * down, width: grid[1] * down };
}

export async function decodeGrids(
  tokenizer: ServedModel,
  set: GridSet,
  options: DecodeGridsOptions,
  limits: RequestLimits = {},
): Promise<Buffer[]> {
  // Admitted whole, before the grids are even checked: a refused request costs nothing.
  const reservation = tokenizer.reserve('decode', set.count, 'grid sets');
  const scope = requestScope(limits);
  try {
    const tokens = validateGrids(tokenizer, set, options.codebooks);
    const { rgb, height, width } = await decodeTokensRgb(tokenizer, tokens, set.count, options.codebooks, { signal: scope.signal, reservation });
    const perImage = 3 * height * width;
    return await Promise.all(
      Array.from({ length: set.count }, (_, n) =>
        encodeRgb8(rgb.subarray(n * perImage, (n + 1) * perImage), height, width, options.format, options.quality),
      ),
    );
  } finally {
    reservation.release();
    scope.dispose();
  }
}
