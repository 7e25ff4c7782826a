// POST /stats: codebook usage of a set of codes (NPZ or JSON, as /decode takes them): JSON, or a PNG histogram.
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { AppDeps } from './app-deps.ts';
import { FqError } from '../errors.ts';
import { codeUsage, describeUsage } from '../tokenize/code-usage.ts';
import { toGridSet } from '../tokenize/token-layout.ts';
import { renderUsageHistogram } from '../tokenize/usage-histogram.ts';
import { readTokenInput } from './token-input.ts';
import { documentBodyParseQuery, validationHook } from './validation.ts';
import { accepts, parseFields } from './options.ts';
import { CodeUsageResponseSchema, DecodeJsonBodySchema, modelOptions, problems } from './schemas.ts';

const QuerySchema = z.object({
  ...modelOptions('query'),
  top: z.coerce.number().int().min(0).max(1000).optional().openapi({ description: 'How many of the most frequent codes to list (default 10)' }),
  format: z.enum(['json', 'png']).optional().openapi({ description: '`png`: a histogram per codebook (also chosen by `Accept: image/png`)' }),
});

const route = createRoute({
  method: 'post',
  path: '/stats',
  operationId: 'countCodeUsage',
  tags: ['tokens'],
  summary: 'Codebook usage of a set of codes',
  description:
    'Counts the codes of every codebook sent (any layout /decode takes: grids or flat h*w sequences, NPZ or JSON) and reports how many distinct codes were used, ' +
    'how many are dead, the perplexity exp(H) of the code distribution and the most frequent codes. `format=png` draws a log-scaled histogram per codebook, dead codes marked red.',
  request: {
    query: QuerySchema,
    body: {
      content: {
        'application/x-npz': { schema: { type: 'string', format: 'binary', description: 'int arrays, one per codebook named after it, as /decode takes them' } },
        'application/octet-stream': { schema: { type: 'string', format: 'binary', description: 'NPZ, as application/x-npz' } },
        'application/json': { schema: DecodeJsonBodySchema },
      },
    },
  },
  responses: {
    200: {
      description: 'Usage per codebook, or the histogram',
      content: { 'application/json': { schema: CodeUsageResponseSchema }, 'image/png': { schema: { type: 'string', format: 'binary' } } },
    },
    ...problems(400, 404, 408, 413, 415, 422, 503),
  },
});

export function statsRoutes(deps: AppDeps) {
  const app = new OpenAPIHono({ defaultHook: validationHook });
  return app.openapi(documentBodyParseQuery(app, route), async (c) => {
    const input = await readTokenInput(c, deps);
    const options = parseFields(QuerySchema, { ...c.req.valid('query'), ...input.fields }, 'options');
    const model = deps.registry.get(options.model, options.version);
    const set = toGridSet(input.arrays, model.model.manifest.grid, model.label);
    // The caps of /decode: a request's codes are held whole; `fqtok stats` counts any number, chunk by chunk.
    if (set.count > deps.config.maxImages) {
      throw new FqError('too_large', `${set.count} grids; at most ${deps.config.maxImages} per request (FQ_MAX_IMAGES); \`fqtok stats\` counts any number`);
    }
    const usage = await codeUsage({ label: model.label, codebooks: model.model.manifest.codebooks }, [set], options.top ?? 10);
    c.header('x-fqtok-model', model.label);
    if (options.format === 'png' || (options.format === undefined && accepts(c, 'image/png'))) {
      const panels = usage.counters.map((counter, k) => ({ codebook: counter.codebook, counts: counter.counts, caption: describeUsage(usage.codebooks[k]!) }));
      return c.body(new Uint8Array(await renderUsageHistogram(panels)), 200, { 'content-type': 'image/png' }) as never;
    }
    const { name, version } = model.model;
    return c.json({ model: name, version, images: usage.images, grids: usage.grids, codebooks: usage.codebooks }, 200);
  });
}
