// Request bodies into what the routes take: JSON or NPZ token bodies into token arrays, JSON or multipart
// image bodies into images. Run in a worker thread (body-worker.ts), so a large or hostile body costs the
// event loop nothing; each is checked against the request limits from what it claims before the work
// the claim would cost.
import { FqError, quoted } from '../errors.ts';
import { readNpz } from '../formats/npz.ts';
import type { SourceImage } from '../tokenize/encode-images.ts';
import type { TokenArray, TokenArrays } from '../tokenize/token-layout.ts';
import { DecodeJsonBodySchema, EncodeJsonBodySchema } from './schemas.ts';
import { validationError } from './validation.ts';

export interface TokenLimits {
  /** Bytes an NPZ may inflate to. */
  maxInflatedBytes: number;
  /** Tokens one codebook's array may hold: the request's grid limit times the largest grid of a served model. */
  maxValues: number;
  /** The limit behind maxValues, for the refusal, e.g. "at most 64 grids of 256 tokens per request (FQ_MAX_IMAGES)". */
  limitText: string;
}

export interface ImageLimits {
  maxImages: number;
}

export interface TokenBody {
  /** Per codebook, in whatever accepted layout was sent; the model's grid resolves it later. */
  arrays: TokenArrays;
  /** Option fields found in the body; they override the query. */
  fields: Record<string, unknown>;
}

export interface ImageBody {
  images: SourceImage[];
  /** Option fields found in the body (multipart fields or JSON keys); they override the query. */
  fields: Record<string, unknown>;
}

/** Form fields besides the images: the options of /encode and /crop are a handful. */
export const MAX_FORM_FIELDS = 32;

function parseJson(bytes: Uint8Array): unknown {
  try {
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch (err) {
    throw new FqError('bad_request', `malformed JSON body: ${(err as Error).message}`);
  }
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Shape of a nested array as its first elements claim it (rows are checked for agreement later). */
function claimedShape(value: unknown): number[] {
  const shape: number[] = [];
  for (let v = value; Array.isArray(v); v = v[0]) shape.push(v.length);
  return shape;
}

const product = (axes: number[]) => axes.reduce((a, b) => a * b, 1);

function tooManyTokens(name: string, values: number, limits: TokenLimits): FqError {
  return new FqError('too_large', `codebook ${quoted(name)} holds ${values} tokens; ${limits.limitText}`);
}

/** Refuses a JSON token body whose arrays claim more tokens than a request may hold, before anything reads them. */
function checkClaimedTokens(body: unknown, limits: TokenLimits): void {
  if (!isRecord(body)) return;
  const counts: Record<string, number> = {};
  if (isRecord(body.tokens)) {
    for (const [name, v] of Object.entries(body.tokens)) counts[name] = product(claimedShape(v));
  }
  if (Array.isArray(body.images) && isRecord(body.images[0]) && isRecord(body.images[0].tokens)) {
    for (const [name, v] of Object.entries(body.images[0].tokens)) counts[name] = body.images.length * product(claimedShape(v));
  }
  for (const [name, values] of Object.entries(counts)) if (values > limits.maxValues) throw tooManyTokens(name, values, limits);
}

/** Shape and C-order values of a nested JSON array; rows must agree in length at every depth. */
export function nestedArray(value: unknown, where: string): TokenArray {
  const shape = claimedShape(value);
  if (shape.length === 0 || shape.includes(0)) throw new FqError('bad_tokens', `${where}: the tokens are empty or not an array`);
  // float64 keeps what was sent (1.5, 1e9) for the range and integer checks that name the position
  const data = new Float64Array(product(shape));
  let filled = 0;
  const walk = (v: unknown, depth: number): void => {
    if (depth === shape.length) {
      if (typeof v !== 'number') throw new FqError('bad_tokens', `${where}: tokens must be numbers`);
      data[filled++] = v;
      return;
    }
    if (!Array.isArray(v) || v.length !== shape[depth]) throw new FqError('bad_tokens', `${where}: the rows differ in length`);
    for (const item of v) walk(item, depth + 1);
  };
  walk(value, 0);
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
      const array = nestedArray(image.tokens[name], `image ${item}, codebook ${quoted(name)}`);
      const first = parts[name]![0];
      if (first && first.shape.join(',') !== array.shape.join(',')) {
        throw new FqError('bad_tokens', `image ${item}, codebook ${quoted(name)}: shape [${array.shape.join(', ')}], image 0 has [${first.shape.join(', ')}]`, { item });
      }
      parts[name]!.push(array);
    }
  });
  return Object.fromEntries(
    names.map((name) => {
      const list = parts[name]!;
      const per = list[0]!.data.length;
      const data = new Float64Array(list.length * per);
      list.forEach((a, i) => data.set(a.data as Float64Array, i * per));
      return [name, { shape: [list.length, ...list[0]!.shape], data }];
    }),
  );
}

/** /decode's and /stats's JSON: an /encode response as it is, or `tokens` arrays per codebook, plus options. */
export function parseJsonTokens(bytes: Uint8Array, limits: TokenLimits): TokenBody {
  const body = parseJson(bytes);
  checkClaimedTokens(body, limits);
  const parsed = DecodeJsonBodySchema.safeParse(body);
  if (!parsed.success) throw validationError('json', parsed.error.issues);
  const { images, tokens, ...fields } = parsed.data as { images?: JsonImages; tokens?: Record<string, unknown> } & Record<string, unknown>;
  if ((images === undefined) === (tokens === undefined)) {
    throw new FqError('bad_tokens', 'send either `images` (an /encode response) or `tokens` (arrays per codebook), not both or neither');
  }
  if (images) return { arrays: arraysFromImages(images), fields };
  const arrays = Object.fromEntries(Object.entries(tokens!).map(([name, v]) => [name, nestedArray(v, `codebook ${quoted(name)}`)]));
  if (Object.keys(arrays).length === 0) throw new FqError('bad_tokens', '`tokens` names no codebook');
  return { arrays, fields };
}

/** NPZ arrays, one per codebook, in any layout; an NPZ with no arrays is refused here. */
export async function parseNpzTokens(bytes: Uint8Array, limits: TokenLimits): Promise<TokenBody> {
  const arrays = await readNpz(bytes, {
    maxBytes: limits.maxInflatedBytes,
    maxValues: limits.maxValues,
    tooManyValues: (name, values) => tooManyTokens(name, values, limits).message,
  });
  if (Object.keys(arrays).length === 0) throw new FqError('bad_tokens', 'the NPZ holds no arrays');
  return { arrays, fields: {} };
}

const BASE64 = /^[A-Za-z0-9+/_-]*={0,2}$/;

/** Decodes standard or URL-safe base64, optionally inside a data: URL; refuses anything else. */
export function decodeBase64Image(text: string, item: number): Uint8Array {
  const payload = text.startsWith('data:') ? text.slice(text.indexOf(',') + 1) : text;
  const compact = payload.replace(/\s+/g, '');
  if (compact.length === 0) throw new FqError('bad_image', `image ${item}: empty base64 string`, { item });
  if (!BASE64.test(compact) || compact.length % 4 === 1) {
    throw new FqError('bad_request', `image ${item}: not valid base64`, { item });
  }
  return new Uint8Array(Buffer.from(compact, compact.includes('-') || compact.includes('_') ? 'base64url' : 'base64'));
}

/** /encode's JSON: `{"images": ["<base64>" | {"data", "name"}], ...options}`. */
export function parseJsonImages(bytes: Uint8Array, limits: ImageLimits): ImageBody {
  const body = parseJson(bytes);
  if (isRecord(body) && Array.isArray(body.images) && body.images.length > limits.maxImages) {
    throw new FqError('too_large', `${body.images.length} images; at most ${limits.maxImages} per request`);
  }
  const parsed = EncodeJsonBodySchema.safeParse(body);
  if (!parsed.success) throw validationError('json', parsed.error.issues);
  const { images, ...fields } = parsed.data;
  return {
    fields,
    images: images.map((image, i) =>
      typeof image === 'string' ? { bytes: decodeBase64Image(image, i), owned: true } : { bytes: decodeBase64Image(image.data, i), name: image.name, owned: true },
    ),
  };
}

/** Parts of a multipart body: occurrences of its delimiter, counted without parsing (at most `stopAfter`). */
function countParts(bytes: Uint8Array, boundary: string, stopAfter: number): number {
  const body = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const delimiter = Buffer.from(`--${boundary}`);
  let count = 0;
  for (let at = body.indexOf(delimiter); at >= 0 && count <= stopAfter; at = body.indexOf(delimiter, at + delimiter.length)) count++;
  return count - 1; // the last delimiter closes the body
}

/** A multipart/form-data body: every file is an image (any field name), every other field an option. */
export async function parseMultipartImages(bytes: Uint8Array, contentType: string, limits: ImageLimits): Promise<ImageBody> {
  const boundary = /;\s*boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType);
  if (!boundary) throw new FqError('bad_request', 'unreadable multipart body (no boundary in its content type)');
  const maxParts = limits.maxImages + MAX_FORM_FIELDS;
  // Parsing a part costs far more than finding it: a body of a million tiny parts is refused unparsed.
  if (countParts(bytes, boundary[1] ?? boundary[2]!, maxParts + 1) > maxParts) {
    throw new FqError('too_large', `the form has more than ${maxParts} parts: at most ${limits.maxImages} images and ${MAX_FORM_FIELDS} option fields`);
  }
  let form: FormData;
  try {
    form = await new Response(bytes as Uint8Array<ArrayBuffer>, { headers: { 'content-type': contentType } }).formData();
  } catch (err) {
    throw new FqError('bad_request', `unreadable multipart body (${(err as Error).message})`);
  }
  const images: SourceImage[] = [];
  const fields: Record<string, unknown> = {};
  for (const [key, value] of form.entries()) {
    if (typeof value === 'string') {
      const earlier = fields[key];
      fields[key] = earlier === undefined ? value : [...(Array.isArray(earlier) ? earlier : [earlier]), value];
      continue;
    }
    if (images.length >= limits.maxImages) throw new FqError('too_large', `more than ${limits.maxImages} images in one request`);
    images.push({ bytes: new Uint8Array(await value.arrayBuffer()), name: value.name || key, owned: true });
  }
  return { images, fields };
}
