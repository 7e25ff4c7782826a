// POST /encode: images in, FQGAN token grids out (JSON or NPZ).
import { createRoute, OpenAPIHono } from '@hono/zod-openapi';
import type { AppDeps } from './app-deps.ts';
import { refuseWhenFull } from '../tokenize/admission.ts';
import { encodeImages, type EncodedBatch } from '../tokenize/encode-images.ts';
import type { ServedModel } from '../serving/served-model.ts';
import { writeNpz } from '../formats/npz.ts';
import { documentBodyParseQuery, validationHook } from './validation.ts';
import { accepts, listOption, parseFields, requestMediaType } from './options.ts';
import { readEncodeInput } from './encode-input.ts';
import { EncodeJsonBodySchema, EncodeOptionsSchema, EncodeQuerySchema, EncodeResponseSchema, problems } from './schemas.ts';

const route = createRoute({
  method: 'post',
  path: '/encode',
  operationId: 'encodeImages',
  tags: ['tokens'],
  summary: 'Tokenize images',
  description:
    'Decodes each image, applies the reference preprocessing (convert to RGB, ADM centre crop to the model\'s image_size, 256x256 for the released models) and returns one token grid per codebook and view. ' +
    'A request is admitted whole (images x views) before anything is decoded: 413 if it could never fit FQ_MAX_QUEUE, 503 with Retry-After if not now. ' +
    'Options come from the query string, multipart fields or JSON keys (the body wins).',
  request: {
    query: EncodeQuerySchema,
    body: {
      content: {
        'multipart/form-data': {
          schema: {
            type: 'object',
            description: 'One or more image files (any field names); option fields as in the query',
            additionalProperties: true,
          },
        },
        'image/*': { schema: { type: 'string', format: 'binary', description: 'One image' } },
        'application/json': { schema: EncodeJsonBodySchema },
      },
    },
  },
  responses: {
    200: {
      description: 'Token grids',
      content: {
        'application/json': { schema: EncodeResponseSchema },
        'application/x-npz': {
          schema: {
            type: 'string',
            format: 'binary',
            description: 'NPZ: one int32 array per codebook, named after it, shape [N, views, h, w]',
          },
        },
      },
    },
    ...problems(400, 404, 408, 413, 415, 422, 503, 504),
  },
});

function toJson(model: ServedModel, batch: EncodedBatch, names: (string | undefined)[], augment: string) {
  const [h, w] = batch.grid;
  const cells = h * w;
  const images = [];
  for (let i = 0; i < batch.count; i++) {
    for (let v = 0; v < batch.views.length; v++) {
      const offset = (i * batch.views.length + v) * cells;
      const tokens: Record<string, number[][]> = {};
      for (const name of batch.codebooks) {
        const data = batch.tokens[name]!;
        tokens[name] = Array.from({ length: h }, (_, r) => Array.from(data.subarray(offset + r * w, offset + (r + 1) * w)));
      }
      images.push({ index: i, ...(names[i] ? { name: names[i] } : {}), view: batch.views[v]!, tokens });
    }
  }
  const { name, version } = model.model;
  return { model: name, version, grid: [h, w] as [number, number], codebooks: batch.codebooks, augment, views: [...batch.views], images };
}

const parseOptions = (fields: Record<string, unknown>) => parseFields(EncodeOptionsSchema, { ...fields, codebooks: listOption(fields.codebooks) }, 'options');

export function encodeRoutes(deps: AppDeps) {
  const app = new OpenAPIHono({ defaultHook: validationHook });
  return app.openapi(documentBodyParseQuery(app, route), async (c) => {
    const query: Record<string, unknown> = c.req.valid('query');
    let model: ServedModel | undefined;
    if (requestMediaType(c).startsWith('image/')) {
      // A raw image body carries no options: the query names the model, which is taken once, here.
      const named = parseOptions(query);
      model = deps.registry.get(named.model, named.version);
      refuseWhenFull([model], 'encode', 'views');
    } else {
      refuseWhenFull(deps.registry.all(), 'encode', 'views'); // a form or JSON body may name any model
    }
    const input = await readEncodeInput(c, deps);
    const options = parseOptions({ ...query, ...input.fields });
    model ??= deps.registry.get(options.model, options.version);
    const started = performance.now();
    const batch = await encodeImages(
      model,
      deps.preprocessor,
      input.images,
      { augment: options.augment, orientation: options.orientation, codebooks: options.codebooks },
      { signal: c.req.raw.signal, timeoutMs: deps.config.requestTimeoutMs },
    );
    c.header('x-fqtok-model', model.label);
    c.header('server-timing', `encode;dur=${(performance.now() - started).toFixed(1)}`);
    const npz = options.format === 'npz' || (options.format === undefined && accepts(c, 'application/x-npz'));
    if (npz) {
      const [h, w] = batch.grid;
      const shape = [batch.count, batch.views.length, h, w];
      const arrays = Object.fromEntries(batch.codebooks.map((n) => [n, { shape, data: batch.tokens[n]! }]));
      return c.body(writeNpz(arrays) as Uint8Array<ArrayBuffer>, 200, { 'content-type': 'application/x-npz' }) as never;
    }
    const names = input.images.map((i) => i.name);
    return c.json(toJson(model, batch, names, options.augment), 200);
  });
}
