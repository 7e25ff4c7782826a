// Reads /encode's images and options from any of its three body types: multipart, raw image/*, JSON base64 (the first and last parsed off the event loop).
import type { Context } from 'hono';
import { FqError } from '../errors.ts';
import type { AppDeps } from './app-deps.ts';
import type { ImageBody } from './body-parser.ts';
import { requestMediaType } from './options.ts';
import { readBody } from './body-guard.ts';

export type EncodeInput = ImageBody;

export async function readEncodeInput(c: Context, deps: Pick<AppDeps, 'config' | 'bodies'>): Promise<EncodeInput> {
  const type = requestMediaType(c);
  const limits = { maxImages: deps.config.maxImages };
  let input: EncodeInput;
  if (type === 'application/json' || type === 'multipart/form-data') {
    const bytes = await readBody(c);
    input = await deps.bodies.images(bytes, type === 'application/json' ? 'json' : 'multipart', c.req.header('content-type')!, limits);
  } else if (type.startsWith('image/')) {
    input = { images: [{ bytes: await readBody(c), owned: true }], fields: {} };
  } else {
    throw new FqError(
      'unsupported_media_type',
      `content type '${type || '(none)'}' is not accepted; send multipart/form-data, image/*, or application/json`,
    );
  }
  if (input.images.length === 0) throw new FqError('bad_request', 'no images in the request');
  return input;
}
