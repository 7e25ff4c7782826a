// Reads /decode's token grids from JSON (an /encode response as it is) or NPZ, into one flat grid set.
import type { Context } from 'hono';
import { FqError } from '../errors.ts';
import type { GridSet } from '../inference/decode-grids.ts';
import { readNpz } from '../imaging/npz.ts';

export interface DecodeInput {
  set: GridSet;
  /** Option fields found in the body; they override the query. */
  fields: Record<string, unknown>;
}

type JsonImages = { tokens: Record<string, number[][]> }[];

/** Flattens images[i].tokens[codebook] (h x w each) into [count*h*w] per codebook, checking shapes agree. */
export function gridsFromJson(images: JsonImages, maxImages: number): GridSet {
  if (images.length > maxImages) throw new FqError('too_large', `${images.length} grid sets; at most ${maxImages} per request`);
  let grid: [number, number] | undefined;
  const names = Object.keys(images[0]!.tokens);
  const tokens: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
  images.forEach((image, item) => {
    const here = Object.keys(image.tokens);
    if (here.length !== names.length || here.some((n) => !names.includes(n))) {
      throw new FqError('bad_tokens', `image ${item} has codebooks ${here.join(', ')}; image 0 has ${names.join(', ')}`, { item });
    }
    for (const name of names) {
      const rows = image.tokens[name]!;
      const shape: [number, number] = [rows.length, rows[0]?.length ?? 0];
      if (shape[0] === 0 || shape[1] === 0 || rows.some((r) => r.length !== shape[1])) {
        throw new FqError('bad_tokens', `image ${item}, codebook '${name}': the grid is empty or its rows differ in length`, { item });
      }
      grid ??= shape;
      if (shape[0] !== grid[0] || shape[1] !== grid[1]) {
        throw new FqError('bad_tokens', `image ${item}, codebook '${name}': grid is ${shape.join('x')}, others are ${grid.join('x')}`, { item });
      }
      const out = tokens[name]!;
      for (const row of rows) for (const v of row) out.push(v);
    }
  });
  return { tokens, count: images.length, grid: grid! };
}

/** NPZ arrays per codebook of shape [N, A, h, w], [N, h, w] or [h, w]; leading axes are flattened. */
export function gridsFromNpz(bytes: Uint8Array, maxImages: number, maxBytes: number): GridSet {
  const arrays = readNpz(bytes, maxBytes);
  const names = Object.keys(arrays);
  if (names.length === 0) throw new FqError('bad_tokens', 'the NPZ holds no arrays');
  const first = arrays[names[0]!]!;
  for (const name of names) {
    const a = arrays[name]!;
    if (a.shape.length < 2 || a.shape.length > 4) {
      throw new FqError('bad_tokens', `array '${name}' has shape [${a.shape.join(', ')}]; expected [N, A, h, w], [N, h, w] or [h, w]`);
    }
    if (a.shape.join(',') !== first.shape.join(',')) {
      throw new FqError('bad_tokens', `array '${name}' has shape [${a.shape.join(', ')}], '${names[0]}' has [${first.shape.join(', ')}]`);
    }
  }
  const grid: [number, number] = [first.shape.at(-2)!, first.shape.at(-1)!];
  const count = first.shape.slice(0, -2).reduce((a, b) => a * b, 1);
  if (count > maxImages) throw new FqError('too_large', `${count} grids; at most ${maxImages} per request`);
  return { tokens: Object.fromEntries(names.map((n) => [n, arrays[n]!.data])), count, grid };
}

export async function readDecodeInput(c: Context, jsonBody: unknown, maxImages: number, maxBytes: number): Promise<DecodeInput> {
  const type = (c.req.header('content-type') ?? '').split(';')[0]!.trim().toLowerCase();
  if (type === 'application/json') {
    const { images, ...fields } = jsonBody as { images: JsonImages } & Record<string, unknown>;
    return { set: gridsFromJson(images, maxImages), fields };
  }
  if (type === 'application/x-npz' || type === 'application/octet-stream') {
    return { set: gridsFromNpz(new Uint8Array(await c.req.arrayBuffer()), maxImages, maxBytes), fields: {} };
  }
  throw new FqError('unsupported_media_type', `content type '${type || '(none)'}' is not accepted; send application/json or application/x-npz`);
}
