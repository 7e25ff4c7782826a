// POST /crop: the exact crops /encode tokenizes (the reference preprocessing at the model's image size), as PNG images.
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { AppDeps } from './app-deps.ts';
import { FqError } from '../errors.ts';
import { requestScope } from '../serving/request-scope.ts';
import { VIEWS } from '../tokenize/views.ts';
import { writeImage } from '../imaging/write-image.ts';
import { readEncodeInput } from './encode-input.ts';
import { accepts, parseFields, requestMediaType } from './options.ts';
import { AugmentSchema, DecodedImageSchema, modelOptions, OrientationSchema, problems } from './schemas.ts';
import { validationHook } from './validation.ts';

const QuerySchema = z.object({
  ...modelOptions('query'),
  augment: AugmentSchema.optional(),
  orientation: OrientationSchema.optional(),
});
const OptionsSchema = QuerySchema.extend({ augment: AugmentSchema.default('none'), orientation: OrientationSchema.default('ignore') });

const CropResponseSchema = z
  .object({
    model: z.string(),
    version: z.number().int(),
    image_size: z.number().int(),
    views: z.array(z.string()),
    images: z.array(DecodedImageSchema.extend({ view: z.string() })).openapi({ description: 'Image-major, then view, as /encode orders its grids' }),
  })
  .openapi('CropResponse');

const route = createRoute({
  method: 'post',
  path: '/crop',
  operationId: 'cropImages',
  tags: ['tokens'],
  summary: 'The crops /encode tokenizes, as images',
  description:
    'Runs the same preprocessing as /encode (decode, RGB, ADM centre crop to the model\'s image_size; `augment` views; `orientation`) and returns the crops as PNG, without tokenizing them: ' +
    'what the model sees. One image and one view give the PNG itself; more (or `Accept: application/json`) give JSON with base64 PNGs.',
  request: {
    query: QuerySchema,
    body: {
      content: {
        'multipart/form-data': { schema: { type: 'object', description: 'One or more image files (any field names); option fields as in the query', additionalProperties: true } },
        'image/*': { schema: { type: 'string', format: 'binary', description: 'One image' } },
      },
    },
  },
  responses: {
    200: {
      description: 'The crop, or every crop as JSON',
      content: { 'image/png': { schema: { type: 'string', format: 'binary' } }, 'application/json': { schema: CropResponseSchema } },
    },
    ...problems(400, 404, 408, 413, 415, 422, 503, 504),
  },
});

export function cropRoutes(deps: AppDeps) {
  const app = new OpenAPIHono({ defaultHook: validationHook });
  return app.openapi(route, async (c) => {
    if (requestMediaType(c) === 'application/json') throw new FqError('unsupported_media_type', 'send multipart/form-data or image/*');
    const input = await readEncodeInput(c, deps);
    const options = parseFields(OptionsSchema, { ...c.req.valid('query'), ...input.fields }, 'options');
    const tokenizer = deps.registry.get(options.model, options.version);
    const size = tokenizer.model.manifest.image_size;
    const scope = requestScope({ signal: c.req.raw.signal, timeoutMs: deps.config.requestTimeoutMs });
    let crops: Uint8Array[][];
    try {
      crops = await Promise.all(
        input.images.map((image, item) =>
          deps.preprocessor.preprocess(image.bytes, { orientation: options.orientation, augment: options.augment, imageSize: size, item, signal: scope.signal }),
        ),
      );
    } finally {
      scope.dispose();
    }
    const pngs = await Promise.all(crops.flat().map((rgb) => writeImage(rgb, size, size, 'png')));
    c.header('x-fqtok-model', tokenizer.label);
    if (pngs.length === 1 && !accepts(c, 'application/json')) return c.body(new Uint8Array(pngs[0]!), 200, { 'content-type': 'image/png' }) as never;
    const views = VIEWS[options.augment];
    return c.json(
      {
        model: tokenizer.model.name,
        version: tokenizer.model.version,
        image_size: size,
        views: [...views],
        images: pngs.map((png, k) => ({ index: Math.floor(k / views.length), view: views[k % views.length]!, content_type: 'image/png', data: png.toString('base64') })),
      },
      200,
    );
  });
}
