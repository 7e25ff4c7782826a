// POST /decode: token grids in (JSON or NPZ), images out (one image body, or JSON with base64 images).
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { AppDeps } from './app-deps.ts';
import { decodeGrids } from '../inference/decode-grids.ts';
import { selectCodebooks } from '../inference/encode-images.ts';
import { CONTENT_TYPES } from '../imaging/tensor-to-image.ts';
import { readDecodeInput } from './decode-input.ts';
import { validationHook } from './validation.ts';
import { accepts, listOption, parseFields, validJson } from './options.ts';
import { DecodeJsonBodySchema, DecodeQuerySchema, DecodeResponseSchema, problems } from './schemas.ts';

const route = createRoute({
  method: 'post',
  path: '/decode',
  summary: 'Rebuild images from token grids',
  description:
    'Takes what /encode returns (its JSON as it is, or its NPZ) and decodes every grid set. With `codebooks`, only those codebooks are used and the others are zeroed (partial decoding). ' +
    'One grid set gives the image itself; several give JSON with base64 images (as does `Accept: application/json`).',
  request: {
    query: DecodeQuerySchema,
    body: {
      content: {
        'application/json': { schema: DecodeJsonBodySchema },
        'application/x-npz': {
          schema: { type: 'string', format: 'binary', description: 'int arrays per codebook: [N, A, h, w], [N, h, w] or [h, w]' },
        },
        'application/octet-stream': { schema: { type: 'string', format: 'binary', description: 'NPZ, as application/x-npz' } },
      },
    },
  },
  responses: {
    200: {
      description: 'The image (one grid set) or JSON with base64 images',
      content: {
        'image/png': { schema: { type: 'string', format: 'binary' } },
        'image/jpeg': { schema: { type: 'string', format: 'binary' } },
        'image/webp': { schema: { type: 'string', format: 'binary' } },
        'application/json': { schema: DecodeResponseSchema },
      },
    },
    ...problems(400, 404, 413, 415, 422, 503, 504),
  },
});

const OptionsSchema = z.object({
  model: z.string().optional(),
  version: z.coerce.number().int().positive().optional(),
  codebooks: z.array(z.string()).optional(),
  format: z.enum(['png', 'jpeg', 'webp']).default('png'),
  quality: z.coerce.number().int().min(1).max(100).optional(),
});

export function decodeRoutes(deps: AppDeps) {
  const app = new OpenAPIHono({ defaultHook: validationHook });
  return app.openapi(route, async (c) => {
    const isJson = (c.req.header('content-type') ?? '').startsWith('application/json');
    const input = await readDecodeInput(c, isJson ? validJson(c) : undefined, deps.config.maxImages, deps.config.maxBodyBytes);
    const merged: Record<string, unknown> = { ...c.req.valid('query'), ...input.fields };
    const options = parseFields(OptionsSchema, { ...merged, codebooks: listOption(merged.codebooks) }, 'options');
    const tokenizer = deps.registry.get(options.model, options.version);
    const codebooks = selectCodebooks(tokenizer, options.codebooks);
    const started = performance.now();
    const files = await decodeGrids(
      tokenizer,
      input.set,
      { codebooks, format: options.format, quality: options.quality },
      { signal: c.req.raw.signal, timeoutMs: deps.config.requestTimeoutMs },
    );
    c.header('x-fqtok-model', tokenizer.label);
    c.header('server-timing', `decode;dur=${(performance.now() - started).toFixed(1)}`);
    const contentType = CONTENT_TYPES[options.format];
    if (files.length === 1 && !accepts(c, 'application/json')) {
      return c.body(new Uint8Array(files[0]!), 200, { 'content-type': contentType }) as never;
    }
    return c.json(
      {
        model: tokenizer.model.name,
        version: tokenizer.model.version,
        format: options.format,
        codebooks,
        images: files.map((f, index) => ({ index, content_type: contentType, data: f.toString('base64') })),
      },
      200,
    );
  });
}
