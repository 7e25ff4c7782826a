// Reads token arrays from a request body: JSON (an /encode response as it is, or arrays per codebook) or NPZ.
import type { Context } from 'hono';
import { FqError } from '../errors.ts';
import { readNpz } from '../formats/npz.ts';
import type { TokenArray, TokenArrays } from '../tokenize/token-layout.ts';
import { requestMediaType } from './options.ts';

export interface TokenInput {
  /** Per codebook, in whatever accepted layout was sent; the model's grid resolves it later. */
  arrays: TokenArrays;
  /** Option fields found in the body; they override the query. */
  fields: Record<string, unknown>;
}

type Nested = number | Nested[];

/** Shape and C-order values of a nested JSON array; rows must agree in length at every depth. */
function nestedArray(value: unknown, where: string): TokenArray {
  const shape: number[] = [];
  for (let v = value; Array.isArray(v); v = v[0]) shape.push(v.length);
  if (shape.length === 0 || shape.includes(0)) throw new FqError('bad_tokens', `${where}: the tokens are empty or not an array`);
  const data: number[] = [];
  const walk = (v: Nested, depth: number): void => {
    if (depth === shape.length) {
      if (typeof v !== 'number') throw new FqError('bad_tokens', `${where}: tokens must be numbers`);
      data.push(v);
      return;
    }
    if (!Array.isArray(v) || v.length !== shape[depth]) throw new FqError('bad_tokens', `${where}: the rows differ in length`);
    for (const item of v) walk(item, depth + 1);
  };
  walk(value as Nested, 0);
  return { shape, data };
}

type JsonImages = { tokens: Record<string, unknown> }[];

/** images[i].tokens[codebook], each an h x w grid or a flat row of h*w, stacked into [N, ...] per codebook. */
export function arraysFromImages(images: JsonImages): TokenArrays {
  const names = Object.keys(images[0]!.tokens);
  const parts: Record<string, TokenArray[]> = Object.fromEntries(names.map((n) => [n, []]));
  images.forEach((image, item) => {
    const here = Object.keys(image.tokens);
    if (here.length !== names.length || here.some((n) => !names.includes(n))) {
      throw new FqError('bad_tokens', `image ${item} has codebooks ${here.join(', ')}; image 0 has ${names.join(', ')}`, { item });
    }
    for (const name of names) {
      const array = nestedArray(image.tokens[name], `image ${item}, codebook '${name}'`);
      const first = parts[name]![0];
      if (first && first.shape.join(',') !== array.shape.join(',')) {
        throw new FqError('bad_tokens', `image ${item}, codebook '${name}': shape [${array.shape.join(', ')}], image 0 has [${first.shape.join(', ')}]`, { item });
      }
      parts[name]!.push(array);
    }
  });
  return Object.fromEntries(
    names.map((name) => {
      const list = parts[name]!;
      return [name, { shape: [list.length, ...list[0]!.shape], data: list.flatMap((a) => a.data as number[]) }];
    }),
  );
}

/** NPZ arrays, one per codebook, in any layout; an NPZ with no arrays is refused here. */
export function arraysFromNpz(bytes: Uint8Array, maxBytes: number): TokenArrays {
  const arrays = readNpz(bytes, maxBytes);
  if (Object.keys(arrays).length === 0) throw new FqError('bad_tokens', 'the NPZ holds no arrays');
  return arrays;
}

export async function readTokenInput(c: Context, jsonBody: unknown, maxBytes: number): Promise<TokenInput> {
  const type = requestMediaType(c);
  if (type === 'application/json') {
    const { images, tokens, ...fields } = jsonBody as { images?: JsonImages; tokens?: Record<string, unknown> } & Record<string, unknown>;
    if ((images === undefined) === (tokens === undefined)) {
      throw new FqError('bad_tokens', 'send either `images` (an /encode response) or `tokens` (arrays per codebook), not both or neither');
    }
    if (images) return { arrays: arraysFromImages(images), fields };
    const arrays = Object.fromEntries(Object.entries(tokens!).map(([name, v]) => [name, nestedArray(v, `codebook '${name}'`)]));
    if (Object.keys(arrays).length === 0) throw new FqError('bad_tokens', '`tokens` names no codebook');
    return { arrays, fields };
  }
  if (type === 'application/x-npz' || type === 'application/octet-stream') {
    return { arrays: arraysFromNpz(new Uint8Array(await c.req.arrayBuffer()), maxBytes), fields: {} };
  }
  throw new FqError('unsupported_media_type', `content type '${type || '(none)'}' is not accepted; send application/json or application/x-npz`);
}
