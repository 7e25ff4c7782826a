// Admin routes for model versions: list a model's versions (shipped and fine-tuned), delete a fine-tuned one.
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { jobsOf, type AppDeps } from './app-deps.ts';
import { FqError } from '../errors.ts';
import { adminAuth } from './admin-auth.ts';
import { ModelVersionListSchema } from './job-schemas.ts';
import { problems } from './schemas.ts';
import { validationHook } from './validation.ts';

const security = [{ bearerAuth: [] }];

const listRoute = createRoute({
  method: 'get',
  path: '/models/{name}/versions',
  operationId: 'listModelVersions',
  tags: ['models'],
  summary: "A model's versions: shipped and fine-tuned (admin)",
  security,
  request: { params: z.object({ name: z.string() }) },
  responses: {
    200: { description: 'Versions, oldest first', content: { 'application/json': { schema: ModelVersionListSchema } } },
    ...problems(401, 403, 404),
  },
});

const deleteRoute = createRoute({
  method: 'delete',
  path: '/models/{name}/versions/{version}',
  operationId: 'deleteModelVersion',
  tags: ['models'],
  summary: 'Stop serving a fine-tuned version and delete its files (admin)',
  description: 'Refused (409) for a shipped version, for the version the default model serves, and for the base of a queued or running job.',
  security,
  request: { params: z.object({ name: z.string(), version: z.coerce.number().int().positive() }) },
  responses: { 204: { description: 'Deleted' }, ...problems(400, 401, 403, 404, 409) },
});

export function modelVersionRoutes(deps: AppDeps) {
  const app = new OpenAPIHono({ defaultHook: validationHook });
  const auth = adminAuth(deps.config);
  app.use('/models/:name/versions', auth);
  app.use('/models/:name/versions/*', auth);
  const jobs = () => jobsOf(deps);
  return app
    .openapi(listRoute, (c) => {
      const data = jobs()
        .versions(c.req.valid('param').name)
        .map((v) => ({ name: v.name, version: v.version, source: v.source, job_id: v.jobId, created_at: v.createdAt?.toISOString() ?? null, default: v.default }));
      return c.json({ object: 'list' as const, data }, 200);
    })
    .openapi(deleteRoute, async (c) => {
      const { name, version } = c.req.valid('param');
      await jobs().deleteVersion(name, version);
      return new Response(null, { status: 204 }) as never; // no body, so no content type
    });
}
