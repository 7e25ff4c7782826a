// GET /models and GET /models/{name}: what is served, with manifests and execution providers.
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { AppDeps } from './app-deps.ts';
import { manifestFacts } from '../backends/manifest.ts';
import type { ServedModel } from '../serving/served-model.ts';
import { ModelDetailSchema, ModelListSchema, modelOptions, problems } from './schemas.ts';
import { validationHook } from './validation.ts';

function describe(served: ServedModel, isDefault: boolean) {
  const { backend, device, precision, requestedDevice, fallback } = served.backendInfo;
  const health = served.health();
  return {
    name: served.model.name,
    version: served.model.version,
    default: isDefault,
    execution_provider: served.executionProvider,
    requested_execution_provider: requestedDevice,
    execution_provider_fallback: fallback ?? null,
    backend,
    device,
    precision,
    ready: health.ready,
    not_ready_reason: health.reason ?? null,
    loaded_at: served.loadedAt.toISOString(),
    ...manifestFacts(served.model.manifest),
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
      const served = deps.registry.get(name, c.req.valid('query').version);
      const loaded = deps.registry.list().filter((s) => s.name === name);
      return c.json(
        {
          ...describe(served, name === deps.registry.defaultModel),
          versions: loaded.map((s) => s.version),
          loaded_versions: loaded.map((s) => ({ version: s.version, loaded_at: s.loadedAt.toISOString() })),
          manifest: served.model.manifest as Record<string, unknown>,
        },
        200,
      );
    });
}
