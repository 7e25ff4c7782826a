// Token arrays in any accepted layout (grids or the flat h*w sequences AR samplers emit) -> one grid set.
import { FqError, quoted } from '../errors.ts';

/** One codebook's tokens as sent: a shape and its values in C order (numbers, not yet checked). */
export interface TokenArray {
  shape: number[];
  data: ArrayLike<number>;
}

export type TokenArrays = Record<string, TokenArray>;

/** Token grids resolved against a model's grid: what the decode operations and code usage take. */
export interface GridSet {
  /** Per codebook: count*h*w values, grid-major (C order of [count, h, w]). */
  tokens: Record<string, ArrayLike<number>>;
  /** Grids per codebook: one per image and view. */
  count: number;
  /** Source images the grids belong to (the leading axis of [N, A, ...] or [N, ...]; 1 for a single grid). */
  images: number;
  grid: readonly [number, number];
}

/** How many h x w grids an array holds, and for how many images (its leading axis, when it has one). */
export interface Layout {
  grids: number;
  images: number;
}

/** The layouts a model with an h x w grid takes, for error messages and documentation. */
export function acceptedLayouts(grid: readonly [number, number]): string {
  const [h, w] = grid;
  return `grids [N, A, ${h}, ${w}], [N, ${h}, ${w}] or [${h}, ${w}], or flat sequences of ${h * w} tokens [N, views, ${h * w}], [N, ${h * w}] or [${h * w}]`;
}

/**
 * The layout of one array, or undefined if its shape fits none. A grid's last two axes are [h, w]; a
 * flat sequence's last axis is h*w (where both fit, h is 1 and they are the same bytes).
 */
export function layoutOf(shape: readonly number[], grid: readonly [number, number]): Layout | undefined {
  const [h, w] = grid;
  const product = (axes: readonly number[]) => axes.reduce((a, b) => a * b, 1);
  const of = (lead: readonly number[]) => ({ grids: product(lead), images: lead.length > 0 ? lead[0]! : 1 });
  if (shape.length >= 2 && shape.length <= 4 && shape.at(-2) === h && shape.at(-1) === w) return of(shape.slice(0, -2));
  if (shape.length >= 1 && shape.length <= 3 && shape.at(-1) === h * w) return of(shape.slice(0, -1));
  return undefined;
}

/** Resolves every codebook's array against the model grid; all must hold the same number of grids. */
export function toGridSet(arrays: TokenArrays, grid: readonly [number, number], modelLabel: string): GridSet {
  const names = Object.keys(arrays);
  if (names.length === 0) throw new FqError('bad_tokens', 'no token arrays were sent');
  let layout: Layout | undefined;
  for (const name of names) {
    const shape = arrays[name]!.shape;
    const here = layoutOf(shape, grid);
    if (here === undefined) {
      throw new FqError(
        'bad_tokens',
        `codebook ${quoted(name)} has shape [${shape.join(', ')}]; model ${modelLabel} takes ${grid[0]}x${grid[1]} grids, ` +
          `${grid[0] * grid[1]} tokens per image: send ${acceptedLayouts(grid)}`,
      );
    }
    if (layout !== undefined && here.grids !== layout.grids) {
      throw new FqError('bad_tokens', `codebook ${quoted(name)} holds ${here.grids} grids, ${quoted(names[0]!)} holds ${layout.grids}`);
    }
    layout = here;
  }
  if (layout!.grids === 0) throw new FqError('bad_tokens', 'no token grids to decode');
  return { tokens: Object.fromEntries(names.map((n) => [n, arrays[n]!.data])), count: layout!.grids, images: layout!.images, grid };
}
