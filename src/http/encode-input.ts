// Reads /encode's images and options from any of its three body types: multipart, raw image/*, JSON base64.
import type { Context } from 'hono';
import { FqError } from '../errors.ts';
import type { SourceImage } from '../tokenize/encode-images.ts';
import { requestMediaType } from './options.ts';

export interface EncodeInput {
  images: SourceImage[];
  /** Option fields found in the body (multipart fields or JSON keys); they override the query. */
  fields: Record<string, unknown>;
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

export async function readEncodeInput(c: Context, jsonBody: unknown, maxImages: number): Promise<EncodeInput> {
  const type = requestMediaType(c);
  let input: EncodeInput;
  if (type === 'application/json') {
    const body = jsonBody as { images: (string | { data: string; name?: string })[] } & Record<string, unknown>;
    const { images, ...fields } = body;
    if (images.length > maxImages) throw new FqError('too_large', `${images.length} images; at most ${maxImages} per request`);
    input = {
      fields,
      images: images.map((image, i) =>
        typeof image === 'string'
          ? { bytes: decodeBase64Image(image, i) }
          : { bytes: decodeBase64Image(image.data, i), name: image.name },
      ),
    };
  } else if (type === 'multipart/form-data') {
    let form: Record<string, unknown>;
    try {
      form = await c.req.parseBody({ all: true });
    } catch (err) {
      throw new FqError('bad_request', `unreadable multipart body (${(err as Error).message})`);
    }
    const images: SourceImage[] = [];
    const fields: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(form)) {
      for (const v of Array.isArray(value) ? value : [value]) {
        if (v instanceof File) {
          if (images.length >= maxImages) throw new FqError('too_large', `more than ${maxImages} images in one request`);
          images.push({ bytes: new Uint8Array(await v.arrayBuffer()), name: v.name || key });
        } else {
          fields[key] = v;
        }
      }
    }
    input = { images, fields };
  } else if (type.startsWith('image/')) {
    input = { images: [{ bytes: new Uint8Array(await c.req.arrayBuffer()) }], fields: {} };
  } else {
    throw new FqError(
      'unsupported_media_type',
      `content type '${type || '(none)'}' is not accepted; send multipart/form-data, image/*, or application/json`,
    );
  }
  if (input.images.length === 0) throw new FqError('bad_request', 'no images in the request');
  return input;
}
