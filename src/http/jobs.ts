// Admin routes for fine-tuning jobs: create, list, get, cancel, events (JSON pages or live SSE), metrics, checkpoints.
import { createRoute, OpenAPIHono, z, type Hook } from '@hono/zod-openapi';
import { streamSSE, type SSEStreamingApi } from 'hono/streaming';
import path from 'node:path';
import { existsSync } from 'node:fs';
import { jobsOf, type AppDeps } from './app-deps.ts';
import { TERMINAL_STATUSES, type JobEventRow, type JobRow } from '../db/schema.ts';
import { FqError } from '../errors.ts';
import type { JobsService } from '../jobs/jobs-service.ts';
import { adminAuth } from './admin-auth.ts';
import {
  FinetuneRequestSchema,
  type FinetuneRequestBody,
  JobCheckpointListSchema,
  JobEventPageSchema,
  JobEventsQuerySchema,
  JobIdParamsSchema,
  JobListQuerySchema,
  JobListSchema,
  JobMetricsQuerySchema,
  JobMetricsSchema,
  JobSchema,
} from './job-schemas.ts';
import { problems } from './schemas.ts';
import { validationHook } from './validation.ts';

const security = [{ bearerAuth: [] }];
const json = <T extends z.ZodTypeAny>(schema: T, description: string) => ({ description, content: { 'application/json': { schema } } });
const adminProblems = problems(401, 403, 404);

/** A fine-tuning request's bad values are 422 with one entry per field, named as in the body. */
const finetuneHook: Hook<any, any, any, any> = (result, c) => {
  if (result.success || result.target !== 'json') return validationHook(result, c);
  const fields = result.error.issues.map((i) => ({
    field: i.path.length ? i.path.join('.') : (i as { keys?: string[] }).keys?.join(', ') ?? 'body',
    message: i.message,
  }));
  throw new FqError('validation', `the fine-tuning job was refused: ${fields.map((f) => `${f.field}: ${f.message}`).join('; ')}`, { fields });
};

const createJobRoute = createRoute({
  method: 'post',
  path: '/jobs/finetune',
  operationId: 'createFinetuneJob',
  tags: ['fine-tuning'],
  summary: 'Queue a fine-tuning job (admin)',
  description:
    'Validated before queueing: the base model is served and has a checkpoint, the dataset names a folder directly under FQ_DATASETS_DIR that holds decodable images and no symlink leading outside FQ_DATASETS_DIR, and the trainer accepts every hyperparameter and finds the weights of every enabled loss. An Idempotency-Key header makes retries safe: the same key and body answer with the same job.',
  security,
  request: {
    headers: z.object({ 'idempotency-key': z.string().min(1).max(255).optional() }),
    body: { required: true, content: { 'application/json': { schema: FinetuneRequestSchema } } },
  },
  responses: {
    202: { ...json(JobSchema, 'Queued; Location names the job'), headers: z.object({ location: z.string() }) },
    ...problems(400, 401, 403, 404, 422, 503, 507),
  },
});

const listJobsRoute = createRoute({
  method: 'get',
  path: '/jobs',
  operationId: 'listJobs',
  tags: ['fine-tuning'],
  summary: 'List fine-tuning jobs, newest first (admin)',
  security,
  request: { query: JobListQuerySchema },
  responses: { 200: json(JobListSchema, 'A page of jobs'), ...problems(400, 401, 403, 404) },
});

const getJobRoute = createRoute({
  method: 'get',
  path: '/jobs/{id}',
  operationId: 'getJob',
  tags: ['fine-tuning'],
  summary: 'One fine-tuning job (admin)',
  security,
  request: { params: JobIdParamsSchema },
  responses: { 200: json(JobSchema, 'The job'), ...adminProblems },
});

const cancelJobRoute = createRoute({
  method: 'post',
  path: '/jobs/{id}/cancel',
  operationId: 'cancelJob',
  tags: ['fine-tuning'],
  summary: 'Cancel a job (admin)',
  description:
    'A queued job is cancelled at once. A running one gets SIGTERM (the trainer saves a checkpoint and stops), then SIGKILL after FQ_JOB_CANCEL_GRACE_MS (the trainer also ends itself then); its status becomes `cancelled` when the trainer has stopped (`cancel_requested_at` is set meanwhile).',
  security,
  request: { params: JobIdParamsSchema },
  responses: { 200: json(JobSchema, 'The job'), ...problems(401, 403, 404, 409, 503, 507) },
});

const eventsRoute = createRoute({
  method: 'get',
  path: '/jobs/{id}/events',
  operationId: 'listJobEvents',
  tags: ['fine-tuning'],
  summary: "A job's events: a JSON page, or a live Server-Sent Events stream (admin)",
  description:
    'With `Accept: text/event-stream` (or `stream=true`) the answer is an SSE stream: every event after `after` (or the Last-Event-ID header, to resume), then live ones; each SSE message has `id` (the event id), `event` (its type) and `data` (the event as JSON). The stream ends after the job ends.',
  security,
  request: { params: JobIdParamsSchema, query: JobEventsQuerySchema },
  responses: {
    200: {
      description: 'Events, oldest first',
      content: { 'application/json': { schema: JobEventPageSchema }, 'text/event-stream': { schema: z.string() } },
    },
    ...problems(400, 401, 403, 404),
  },
});

const metricsRoute = createRoute({
  method: 'get',
  path: '/jobs/{id}/metrics',
  operationId: 'getJobMetrics',
  tags: ['fine-tuning'],
  summary: "A job's training curves: losses and codebook usage per progress event, and evaluations (admin)",
  description:
    'Paged over the job\'s progress and eval events, oldest first: `limit` of them per page (default 1000, at most 10000); while `has_more`, pass `next_cursor` as `after` for the next page.',
  security,
  request: { params: JobIdParamsSchema, query: JobMetricsQuerySchema },
  responses: { 200: json(JobMetricsSchema, 'Metrics'), ...problems(400, 401, 403, 404) },
});

const checkpointsRoute = createRoute({
  method: 'get',
  path: '/jobs/{id}/checkpoints',
  operationId: 'listJobCheckpoints',
  tags: ['fine-tuning'],
  summary: "A job's checkpoints (admin)",
  security,
  request: { params: JobIdParamsSchema },
  responses: { 200: json(JobCheckpointListSchema, 'Checkpoints, oldest first'), ...adminProblems },
});

const iso = (d: Date | null) => (d ? d.toISOString() : null);
const numOrNull = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : null);

export function jobResource(job: JobRow) {
  const progress = job.progress ?? {};
  return {
    id: job.id,
    object: 'fine_tuning.job' as const,
    status: job.status,
    base_model: { name: job.baseModel, version: job.baseVersion },
    dataset: job.dataset,
    output_model: job.outputModel,
    result: job.resultVersion !== null ? { model: job.outputModel, version: job.resultVersion } : null,
    hyperparameters: (job.spec.hyperparameters ?? {}) as Record<string, unknown>,
    progress: {
      step: job.step,
      total_steps: job.totalSteps,
      eta_seconds: job.status === 'running' ? numOrNull(progress.eta_s) : null,
      images_per_second: numOrNull(progress.images_per_s),
      losses: (progress.losses as Record<string, number | null> | undefined) ?? null,
    },
    attempts: job.attempts,
    created_at: job.createdAt.toISOString(),
    started_at: iso(job.startedAt),
    finished_at: iso(job.finishedAt),
    cancel_requested_at: iso(job.cancelRequestedAt),
    error: job.error ?? null,
  };
}

const eventResource = (e: JobEventRow) => ({ id: e.id, job_id: e.jobId, type: e.type, created_at: e.createdAt.toISOString(), data: e.data });

const service = (deps: AppDeps): JobsService => jobsOf(deps);

export function jobRoutes(deps: AppDeps) {
  const app = new OpenAPIHono({ defaultHook: validationHook });
  app.openAPIRegistry.registerComponent('securitySchemes', 'bearerAuth', {
    type: 'http',
    scheme: 'bearer',
    description: 'FQ_ADMIN_TOKEN; without it configured the admin routes answer 404',
  });
  const auth = adminAuth(deps.config);
  app.use('/jobs', auth);
  app.use('/jobs/*', auth);

  return app
    .openapi(
      createJobRoute,
      async (c) => {
        const body = c.req.valid('json') as FinetuneRequestBody;
        const { 'idempotency-key': key } = c.req.valid('header') as { 'idempotency-key'?: string };
        const { job, replayed } = await service(deps).create(body, key);
        if (replayed) c.header('idempotent-replayed', 'true');
        return c.json(jobResource(job), 202, { location: `/jobs/${job.id}` });
      },
      finetuneHook,
    )
    .openapi(listJobsRoute, (c) => {
      const query = c.req.valid('query');
      const page = service(deps).list(query);
      const data = page.data.map(jobResource);
      return c.json({ object: 'list' as const, data, has_more: page.hasMore, next_cursor: page.hasMore ? data.at(-1)!.id : null }, 200);
    })
    .openapi(getJobRoute, (c) => c.json(jobResource(service(deps).get(c.req.valid('param').id)), 200))
    .openapi(cancelJobRoute, (c) => c.json(jobResource(service(deps).cancel(c.req.valid('param').id)), 200))
    .openapi(eventsRoute, async (c) => {
      const { id } = c.req.valid('param');
      const query = c.req.valid('query');
      const jobs = service(deps);
      const wantsStream = query.stream === 'true' || (c.req.header('accept') ?? '').includes('text/event-stream');
      if (wantsStream) {
        const lastEventId = Number(c.req.header('last-event-id'));
        const after = Number.isInteger(lastEventId) && lastEventId >= 0 ? lastEventId : (query.after ?? 0);
        jobs.get(id);
        return streamSSE(c, (stream) => streamEvents(stream, jobs, id, after)) as any;
      }
      const page = jobs.events(id, { after: query.after, limit: query.limit });
      const data = page.data.map(eventResource);
      return c.json({ object: 'list' as const, data, has_more: page.hasMore, next_cursor: page.hasMore ? data.at(-1)!.id : null }, 200);
    })
    .openapi(metricsRoute, (c) => {
      const { id } = c.req.valid('param');
      const query = c.req.valid('query');
      const page = service(deps).events(id, { after: query.after, limit: query.limit, types: ['progress', 'eval'] });
      const events = page.data;
      const steps = events
        .filter((e) => e.type === 'progress')
        .map((e) => ({
          step: Number(e.data.step ?? 0),
          time: e.createdAt.toISOString(),
          losses: (e.data.losses ?? {}) as Record<string, number | null>,
          usage: (e.data.usage ?? {}) as Record<string, number | null>,
          images_per_s: numOrNull(e.data.images_per_s),
        }));
      const evals = events.filter((e) => e.type === 'eval').map((e) => ({ ...e.data, step: Number(e.data.step ?? 0), time: e.createdAt.toISOString() }));
      return c.json({ job_id: id, steps, evals, has_more: page.hasMore, next_cursor: page.hasMore ? events.at(-1)!.id : null }, 200);
    })
    .openapi(checkpointsRoute, (c) => {
      const data = service(deps)
        .checkpoints(c.req.valid('param').id)
        .map((k) => ({ step: k.step, file: path.basename(k.path), created_at: k.createdAt.toISOString(), available: existsSync(k.path) }));
      return c.json({ object: 'list' as const, data }, 200);
    });
}

const KEEPALIVE_MS = 15_000;

/** Backlog after `after`, then live events, until the job has ended and its last event is sent. */
async function streamEvents(stream: SSEStreamingApi, jobs: JobsService, id: string, after: number): Promise<void> {
  let last = after;
  const live: JobEventRow[] = [];
  let wake: (() => void) | undefined;
  const unsubscribe = jobs.subscribe(id, (e) => {
    live.push(e);
    wake?.();
  }); // subscribed before reading the backlog, so nothing falls in between
  stream.onAbort(() => wake?.());
  const send = async (e: JobEventRow) => {
    if (e.id <= last) return;
    await stream.writeSSE({ id: String(e.id), event: e.type, data: JSON.stringify(eventResource(e)) });
    last = e.id;
  };
  try {
    for (let page = jobs.events(id, { after: last, limit: 500 }); ; page = jobs.events(id, { after: last, limit: 500 })) {
      for (const e of page.data) await send(e);
      if (!page.hasMore) break;
    }
    while (!stream.aborted) {
      while (live.length) await send(live.shift()!);
      if (TERMINAL_STATUSES.includes(jobs.get(id).status)) break;
      const woke = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), KEEPALIVE_MS);
        wake = () => {
          clearTimeout(timer);
          resolve(true);
        };
      });
      wake = undefined;
      if (!woke && !stream.aborted) await stream.write(': keep-alive\n\n');
    }
  } finally {
    unsubscribe();
  }
}
