// Request and response schemas shared by validation and the OpenAPI document (one source of truth).
import { z } from '@hono/zod-openapi';
import { ORIENTATIONS } from '../imaging/read-image.ts';
import { AUGMENTS } from '../imaging/reference-crop.ts';
import { IMAGE_FORMATS } from '../imaging/write-image.ts';

export const ProblemSchema = z
  .object({
    type: z.string(),
    title: z.string(),
    status: z.number().int(),
    detail: z.string(),
    instance: z.string().optional(),
    request_id: z.string().optional(),
    item: z.number().int().optional().openapi({ description: 'Index of the offending image or grid set, when there is one' }),
    errors: z.array(z.object({ field: z.string(), message: z.string() })).optional(),
  })
  .openapi('Problem');

export const problemContent = { 'application/problem+json': { schema: ProblemSchema } };

export function problems(...statuses: number[]) {
  const descriptions: Record<number, string> = {
    400: 'Malformed request (body, options or parameters)',
    401: 'Missing or wrong bearer token',
    403: 'Token not allowed',
    404: 'Unknown model or resource',
    406: 'Unsupported Accept type',
    408: 'The body stopped arriving (FQ_BODY_IDLE_TIMEOUT_MS)',
    409: 'Conflict with the current state',
    413: 'Body, image or image count over a limit',
    415: 'Unsupported content type',
    422: 'Unreadable image, invalid token grids or invalid values',
    503: 'Queue full, too many request bodies in flight, not ready, or a read-only data directory (see Retry-After)',
    504: 'Not processed within the request timeout',
    507: 'The data directory (FQ_DATA_DIR) is full',
  };
  return Object.fromEntries(statuses.map((s) => [s, { description: descriptions[s] ?? 'Error', content: problemContent }]));
}

export const AugmentSchema = z.enum(AUGMENTS).openapi({
  description:
    'Views encoded per image: `none` (the centre crop), `flip` (centre crop and its mirror, as the reference code extraction does), `ten_crop` (four corners and centre, then their mirrors).',
});
export const OrientationSchema = z.enum(ORIENTATIONS).openapi({
  description: 'EXIF orientation: `ignore` (default) is the reference-exact mode; `exif` rotates/flips the image upright first.',
});
export const ImageFormatSchema = z.enum(IMAGE_FORMATS);

/**
 * Where a request's options arrive: the query string (strings; lists comma-separated), a JSON body
 * (typed values, lists as arrays), or `merged`: query and body fields together (multipart fields are
 * strings), as the handler parses them once, defaults applied. Each route declares its options once,
 * as a function of the source, so the query, the body and the parse cannot drift apart.
 */
type OptionSource = 'query' | 'json' | 'merged';

/** The schema for this source; typed per source, so that each route's three schemas keep exact types. */
function bySource<S extends OptionSource, Q, J, M>(source: S, forms: { query: Q; json: J; merged: M }): S extends 'query' ? Q : S extends 'json' ? J : M {
  return forms[source] as never;
}

/** An integer option: typed in JSON, coerced from a string elsewhere. */
const integer = <S extends OptionSource>(source: S) => bySource(source, { query: z.coerce.number().int(), json: z.number().int(), merged: z.coerce.number().int() });

/** `model` and `version`, which every tokenizer route takes. */
export function modelOptions<S extends OptionSource>(source: S) {
  return {
    model: z.string().optional().openapi({ description: 'Model name (default: the server default model)' }),
    version: integer(source).positive().optional().openapi({ description: 'Model version (default: the latest)' }),
  };
}

function codebooksOption<S extends OptionSource>(source: S, description: string) {
  const list = z.array(z.string()).optional().openapi({ description });
  return bySource(source, {
    query: z.string().optional().openapi({ description: `${description}; comma-separated`, example: 'vis,sem_mid' }),
    json: list,
    merged: list,
  });
}

/** Optional in the query and the body; the default is applied once, when the two are merged. */
function withDefault<S extends OptionSource, T extends z.ZodType>(source: S, schema: T, value: z.output<T>) {
  return bySource(source, { query: schema.optional(), json: schema.optional(), merged: schema.default(value as never) });
}

const EncodeFormatSchema = z.enum(['json', 'npz']).openapi({ description: 'Response format; `Accept: application/x-npz` also selects NPZ' });

/** /encode's options. */
function encodeOptions<S extends OptionSource>(source: S) {
  return z.object({
    ...modelOptions(source),
    augment: withDefault(source, AugmentSchema, 'none'),
    codebooks: codebooksOption(source, 'Codebook names (default: all of the model)'),
    orientation: withDefault(source, OrientationSchema, 'ignore'),
    format: EncodeFormatSchema.optional(),
  });
}

export const EncodeQuerySchema = encodeOptions('query');
/** The query and body fields merged, as /encode parses them (defaults applied). */
export const EncodeOptionsSchema = encodeOptions('merged');

export const Base64ImageSchema = z.union([
  z.string().openapi({ description: 'Base64 image bytes, optionally as a data: URL' }),
  z.object({ data: z.string(), name: z.string().optional() }),
]);

export const EncodeJsonBodySchema = z
  .object({
    images: z.array(Base64ImageSchema).min(1),
    ...encodeOptions('json').shape,
  })
  .openapi('EncodeJsonRequest');

export const GridSchema = z.array(z.array(z.number())).openapi({ description: 'h rows of w token indices', example: [[1, 2], [3, 4]] });

export const EncodedImageSchema = z
  .object({
    index: z.number().int().openapi({ description: 'Position of the source image in the request' }),
    name: z.string().optional().openapi({ description: 'File name, when the request gave one' }),
    view: z.string().openapi({ description: 'Which view of the image: `center`, `flip`, or a ten-crop position' }),
    tokens: z.record(z.string(), GridSchema).openapi({ description: 'One h x w grid per codebook' }),
  })
  .openapi('EncodedImage');

export const EncodeResponseSchema = z
  .object({
    model: z.string(),
    version: z.number().int(),
    grid: z.tuple([z.number().int(), z.number().int()]),
    codebooks: z.array(z.string()),
    augment: AugmentSchema,
    views: z.array(z.string()),
    images: z.array(EncodedImageSchema),
  })
  .openapi('EncodeResponse');

export const DecodeFormatSchema = z.enum([...IMAGE_FORMATS, 'npz']).openapi({
  description:
    'Image format, or `npz`: one evaluation archive with `arr_0`, uint8 [N, H, W, 3] (as numpy and the ADM evaluation suite read it; `Accept: application/x-npz` also selects it)',
});

/** /decode's options. */
function decodeOptions<S extends OptionSource>(source: S) {
  return z.object({
    ...modelOptions(source),
    codebooks: codebooksOption(source, 'Decode with these codebooks only; the others are zeroed (partial decoding)'),
    format: DecodeFormatSchema.optional(),
    quality: integer(source).min(1).max(100).optional().openapi({ description: 'JPEG and WebP quality' }),
  });
}

export const DecodeQuerySchema = decodeOptions('query');
/** The query and body fields merged, as /decode parses them. */
export const DecodeOptionsSchema = decodeOptions('merged');

export const FlatSequenceSchema = z
  .array(z.number())
  .openapi({ description: 'One image as a flat sequence of h*w token indices, row-major (what an AR sampler emits)' });

const tokenValues = z.number();
export const TokenArraySchema = z
  .union([z.array(tokenValues), z.array(z.array(tokenValues)), z.array(z.array(z.array(tokenValues))), z.array(z.array(z.array(z.array(tokenValues))))])
  .openapi({
    description: 'Token indices of one codebook, nested as the NPZ arrays are: grids [N, A, h, w], [N, h, w] or [h, w], or flat sequences [N, views, h*w], [N, h*w] or [h*w]',
    example: [[1, 2, 3, 4]],
  });

export const DecodeJsonBodySchema = z
  .object({
    images: z
      .array(z.object({ tokens: z.record(z.string(), z.union([GridSchema, FlatSequenceSchema])) }).passthrough())
      .min(1)
      .optional()
      .openapi({ description: 'An /encode response\'s images; each codebook an h x w grid or a flat row of h*w' }),
    tokens: z
      .record(z.string(), TokenArraySchema)
      .optional()
      .openapi({ description: 'Instead of `images`: one array per codebook, e.g. [B, h*w] from an AR sampler' }),
    ...decodeOptions('json').shape,
  })
  .passthrough()
  .openapi('DecodeJsonRequest', { description: 'Accepts an /encode JSON response as it is, or `tokens` arrays per codebook; send one of the two' });

export const DecodedImageSchema = z
  .object({ index: z.number().int(), content_type: z.string(), data: z.string().openapi({ description: 'Base64 image bytes' }) })
  .openapi('DecodedImage');

export const DecodeResponseSchema = z
  .object({
    model: z.string(),
    version: z.number().int(),
    format: ImageFormatSchema,
    codebooks: z.array(z.string()),
    images: z.array(DecodedImageSchema),
  })
  .openapi('DecodeResponse');

export const CodebookSchema = z.object({ name: z.string(), size: z.number().int(), dim: z.number().int() });

export const ModelSchema = z
  .object({
    name: z.string(),
    version: z.number().int(),
    default: z.boolean(),
    execution_provider: z.string().openapi({ description: 'Where the model really runs (after any fallback)' }),
    requested_execution_provider: z.string().openapi({ description: 'Where the configuration asked it to run (the first of FQ_EXECUTION_PROVIDERS)' }),
    execution_provider_fallback: z
      .string()
      .nullable()
      .openapi({ description: 'Why it does not run where asked (each refused provider and the reason), or null' }),
    backend: z.enum(['onnx', 'torch']).openapi({ description: 'Inference engine of this version (FQ_BACKEND)' }),
    device: z.string().openapi({ description: 'Where it runs: cpu, cuda, webgpu' }),
    precision: z.string().openapi({ description: 'fp32, tf32, bf16 or fp16' }),
    ready: z.boolean(),
    not_ready_reason: z.string().nullable(),
    loaded_at: z.string().openapi({ description: 'When this version began to serve (ISO 8601): at start-up, or when hot pickup found it in the models folder' }),
    variant: z.enum(['triple', 'dual']),
    image_size: z.number().int(),
    downsample: z.number().int(),
    grid: z.tuple([z.number().int(), z.number().int()]),
    codebooks: z.array(CodebookSchema),
  })
  .openapi('Model');

export const ModelDetailSchema = ModelSchema.extend({
  versions: z.array(z.number().int()),
  loaded_versions: z
    .array(z.object({ version: z.number().int(), loaded_at: z.string() }))
    .openapi({ description: 'Every served version and when it was loaded (ISO 8601)' }),
  manifest: z.record(z.string(), z.unknown()),
}).openapi('ModelDetail');

export const ModelListSchema = z.object({ default: z.string().nullable(), models: z.array(ModelSchema) }).openapi('ModelList');

export const CodebookUsageSchema = z
  .object({
    codebook: z.string(),
    size: z.number().int().openapi({ description: 'Codes in the codebook' }),
    tokens: z.number().int().openapi({ description: 'Tokens counted' }),
    used: z.number().int().openapi({ description: 'Distinct codes that occur' }),
    dead: z.number().int().openapi({ description: 'Codes that never occur (size - used)' }),
    usage: z.number().openapi({ description: 'used / size' }),
    perplexity: z.number().openapi({ description: 'exp(H), H the entropy in nats of the code frequencies' }),
    top: z.array(z.object({ code: z.number().int(), count: z.number().int() })).openapi({ description: 'Most frequent codes, by count then code' }),
  })
  .openapi('CodebookUsage');

export const CodeUsageResponseSchema = z
  .object({
    model: z.string(),
    version: z.number().int(),
    images: z.number().int().openapi({ description: 'Source images the codes belong to: the leading axis N of [N, A, h, w], [N, h*w] and the like; 1 for a single grid' }),
    grids: z.number().int().openapi({ description: 'Grids counted per codebook: one per image and view (N x A for [N, A, h, w])' }),
    codebooks: z.array(CodebookUsageSchema),
  })
  .openapi('CodeUsage');
