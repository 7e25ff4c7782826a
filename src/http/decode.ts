// POST /decode: token grids or flat sequences in (JSON or NPZ); images, JSON with base64 images, or an NPZ archive out.
import { createRoute, OpenAPIHono } from '@hono/zod-openapi';
import type { AppDeps } from './app-deps.ts';
import { FqError } from '../errors.ts';
import { decodeToArchive } from '../tokenize/decode-archive.ts';
import { selectCodebooks } from '../tokenize/codebooks.ts';
import { decodeGrids } from '../tokenize/decode-grids.ts';
import { toGridSet } from '../tokenize/token-layout.ts';
import { CONTENT_TYPES } from '../imaging/write-image.ts';
import { streamedBody } from './streamed-body.ts';
import { readTokenInput } from './token-input.ts';
import { documentBodyParseQuery, validationHook } from './validation.ts';
import { accepts, listOption, parseFields } from './options.ts';
import { DecodeJsonBodySchema, DecodeOptionsSchema, DecodeQuerySchema, DecodeResponseSchema, problems } from './schemas.ts';

const LAYOUTS = 'grids [N, A, h, w], [N, h, w] or [h, w], or flat sequences of h*w tokens [N, views, h*w] (the reference extractor\'s files), [N, h*w] (an AR sampler\'s batch) or [h*w]';

const route = createRoute({
  method: 'post',
  path: '/decode',
  operationId: 'decodeTokens',
  tags: ['tokens'],
  summary: 'Rebuild images from token grids or flat token sequences',
  description:
    'Takes what /encode returns (its JSON as it is, or its NPZ), or flat sequences of h*w tokens per image as autoregressive samplers emit them, and decodes every grid. ' +
    'With `codebooks`, only those codebooks are used and the others are zeroed (partial decoding). ' +
    'One grid gives the image itself; several give JSON with base64 images (as does `Accept: application/json`). ' +
    '`format=npz` (or `Accept: application/x-npz`) answers one evaluation archive, `arr_0` uint8 [N, H, W, 3], streamed as it is decoded. ' +
    `A shape that fits none of the layouts (${LAYOUTS}) is a 422 naming the model's h*w.`,
  request: {
    query: DecodeQuerySchema,
    body: {
      content: {
        'application/json': { schema: DecodeJsonBodySchema },
        'application/x-npz': {
          schema: { type: 'string', format: 'binary', description: `int arrays, one per codebook named after it: ${LAYOUTS}` },
        },
        'application/octet-stream': { schema: { type: 'string', format: 'binary', description: 'NPZ, as application/x-npz' } },
      },
    },
  },
  responses: {
    200: {
      description: 'The image (one grid), JSON with base64 images, or the NPZ archive',
      content: {
        'image/png': { schema: { type: 'string', format: 'binary' } },
        'image/jpeg': { schema: { type: 'string', format: 'binary' } },
        'image/webp': { schema: { type: 'string', format: 'binary' } },
        'application/json': { schema: DecodeResponseSchema },
        'application/x-npz': {
          schema: {
            type: 'string',
            format: 'binary',
            description: "NPZ (stored, ZIP64) with one array `arr_0`: uint8 [N, H, W, 3], images in input order; np.load(f)['arr_0'] reads it",
          },
        },
      },
    },
    ...problems(400, 404, 408, 413, 415, 422, 503, 504),
  },
});

export function decodeRoutes(deps: AppDeps) {
  const app = new OpenAPIHono({ defaultHook: validationHook });
  return app.openapi(documentBodyParseQuery(app, route), async (c) => {
    const input = await readTokenInput(c, deps);
    const merged: Record<string, unknown> = { ...c.req.valid('query'), ...input.fields };
    const options = parseFields(DecodeOptionsSchema, { ...merged, codebooks: listOption(merged.codebooks) }, 'options');
    const model = deps.registry.get(options.model, options.version);
    const set = toGridSet(input.arrays, model.model.manifest.grid, model.label);
    if (set.count > deps.config.maxImages) throw new FqError('too_large', `${set.count} grids; at most ${deps.config.maxImages} per request`);
    const limits = { signal: c.req.raw.signal, timeoutMs: deps.config.requestTimeoutMs };
    c.header('x-fqtok-model', model.label);
    const format = options.format ?? (accepts(c, 'application/x-npz') ? 'npz' : 'png');
    if (format === 'npz') {
      // Admitted and checked before the first byte goes out; a later failure can only cut the stream short.
      const archive = decodeToArchive(model, set, { codebooks: options.codebooks }, limits);
      const headers: Record<string, string> = { 'content-type': 'application/x-npz', 'content-disposition': 'attachment; filename="samples.npz"' };
      if (archive.totalBytes > 0) headers['content-length'] = String(archive.totalBytes);
      return c.body(streamedBody(c, archive.output, deps.config.writeIdleTimeoutMs), 200, headers) as never;
    }
    const started = performance.now();
    const files = await decodeGrids(model, set, { codebooks: options.codebooks, format, quality: options.quality }, limits);
    c.header('server-timing', `decode;dur=${(performance.now() - started).toFixed(1)}`);
    const contentType = CONTENT_TYPES[format];
    if (files.length === 1 && !accepts(c, 'application/json')) {
      return c.body(new Uint8Array(files[0]!), 200, { 'content-type': contentType }) as never;
    }
    return c.json(
      {
        model: model.model.name,
        version: model.model.version,
        format,
        codebooks: selectCodebooks(model, options.codebooks), // the decode above accepted them
        images: files.map((f, index) => ({ index, content_type: contentType, data: f.toString('base64') })),
      },
      200,
    );
  });
}
