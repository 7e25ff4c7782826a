// GET /models and GET /models/{name}: what is served, with manifests and execution providers.
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { AppDeps } from './app-deps.ts';
import type { ServedModel } from '../inference/served-model.ts';
import { ModelDetailSchema, ModelListSchema, modelOptions, problems } from './schemas.ts';
import { validationHook } from './validation.ts';

function describe(t: ServedModel, isDefault: boolean) {
  const m = t.model.manifest;
  return {
    name: t.model.name,
    version: t.model.version,
    default: isDefault,
    execution_provider: t.executionProvider,
    backend: t.backendInfo.backend,
    device: t.backendInfo.device,
    precision: t.backendInfo.precision,
    ready: t.health().ready,
    not_ready_reason: t.health().reason ?? null,
    variant: m.variant,
    image_size: m.image_size,
    downsample: m.downsample,
    grid: m.grid,
    codebooks: m.codebooks.map(({ name, size, dim }) => ({ name, size, dim })),
  };
}

const listRoute = createRoute({
  method: 'get',
  path: '/models',
  operationId: 'listModels',
  tags: ['models'],
  summary: 'List served models (latest version of each)',
  responses: { 200: { description: 'Models', content: { 'application/json': { schema: ModelListSchema } } } },
});

const getRoute = createRoute({
  method: 'get',
  path: '/models/{name}',
  operationId: 'getModel',
  tags: ['models'],
  summary: 'One model: manifest, versions, execution provider',
  request: {
    params: z.object({ name: z.string() }),
    query: z.object({ version: modelOptions('query').version }),
  },
  responses: {
    200: { description: 'The model', content: { 'application/json': { schema: ModelDetailSchema } } },
    ...problems(400, 404),
  },
});

export function modelRoutes(deps: AppDeps) {
  const app = new OpenAPIHono({ defaultHook: validationHook });
  return app
    .openapi(listRoute, (c) => {
      const latest = new Map<string, number>();
      for (const s of deps.registry.list()) latest.set(s.name, Math.max(latest.get(s.name) ?? 0, s.version));
      const models = [...latest].map(([name, version]) => describe(deps.registry.get(name, version), name === deps.registry.defaultModel));
      return c.json({ default: deps.registry.defaultModel ?? null, models }, 200);
    })
    .openapi(getRoute, (c) => {
      const { name } = c.req.valid('param');
      const tokenizer = deps.registry.get(name, c.req.valid('query').version);
      const versions = deps.registry.list().filter((s) => s.name === name).map((s) => s.version);
      return c.json(
        { ...describe(tokenizer, name === deps.registry.defaultModel), versions, manifest: tokenizer.model.manifest as Record<string, unknown> },
        200,
      );
    });
}
