// Admin routes for a job's sample reconstruction grids (inputs above, reconstructions below), one per evaluation.
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { jobsOf, type AppDeps } from './app-deps.ts';
import { FqError } from '../errors.ts';
import { listSamples, readSample } from '../jobs/job-samples.ts';
import { dataLayout } from '../jobs/layout.ts';
import { adminAuth } from './admin-auth.ts';
import { JobIdParamsSchema } from './job-schemas.ts';
import { problems } from './schemas.ts';
import { validationHook } from './validation.ts';

const security = [{ bearerAuth: [] }];

const SampleListSchema = z
  .object({
    object: z.literal('list'),
    data: z.array(
      z.object({
        step: z.number().int(),
        url: z.string().openapi({ description: 'GET it (with the bearer token) for the PNG', example: '/jobs/ftjob-0123456789abcdef0123/samples/1000' }),
        created_at: z.string().openapi({ description: 'ISO 8601 time' }),
      }),
    ),
  })
  .openapi('FineTuningJobSampleList');

const listRoute = createRoute({
  method: 'get',
  path: '/jobs/{id}/samples',
  operationId: 'listJobSamples',
  tags: ['fine-tuning'],
  summary: "A job's sample reconstruction grids, one per evaluation, oldest first (admin)",
  description:
    'At each evaluation the trainer reconstructs up to 8 held-out images through their tokens and writes a grid: the inputs on the top row, their reconstructions below. It is on disk before the `eval` event is sent.',
  security,
  request: { params: JobIdParamsSchema },
  responses: { 200: { description: 'Grids', content: { 'application/json': { schema: SampleListSchema } } }, ...problems(401, 403, 404) },
});

const getRoute = createRoute({
  method: 'get',
  path: '/jobs/{id}/samples/{step}',
  operationId: 'getJobSample',
  tags: ['fine-tuning'],
  summary: 'One sample reconstruction grid (admin)',
  security,
  request: { params: JobIdParamsSchema.extend({ step: z.coerce.number().int().nonnegative().openapi({ example: 1000 }) }) },
  responses: { 200: { description: 'The grid', content: { 'image/png': { schema: { type: 'string', format: 'binary' } } } }, ...problems(400, 401, 403, 404) },
});

export function jobSampleRoutes(deps: AppDeps) {
  const app = new OpenAPIHono({ defaultHook: validationHook });
  const auth = adminAuth(deps.config);
  app.use('/jobs/:id/samples', auth);
  app.use('/jobs/:id/samples/*', auth);
  const { jobsDir } = dataLayout(deps.config.dataDir, deps.config.weightsDir);
  const existingJob = (id: string) => {
    return jobsOf(deps).get(id).id; // 404 for an unknown id, so no other path is ever built from it
  };
  return app
    .openapi(listRoute, async (c) => {
      const id = existingJob(c.req.valid('param').id);
      const data = (await listSamples(jobsDir, id)).map((s) => ({ step: s.step, url: `/jobs/${id}/samples/${s.step}`, created_at: s.createdAt.toISOString() }));
      return c.json({ object: 'list' as const, data }, 200);
    })
    .openapi(getRoute, async (c) => {
      const { id, step } = c.req.valid('param');
      const png = await readSample(jobsDir, existingJob(id), step);
      return c.body(new Uint8Array(png), 200, { 'content-type': 'image/png', 'cache-control': 'private, max-age=3600' }) as never;
    });
}
