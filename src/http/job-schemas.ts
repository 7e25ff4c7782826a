// Request and response schemas of the admin routes: fine-tuning jobs and model versions.
import { z } from '@hono/zod-openapi';
import { JOB_STATUSES } from '../db/schema.ts';

export const JobStatusSchema = z.enum(JOB_STATUSES).openapi({ description: 'queued -> running -> succeeded | failed | cancelled' });

export const FinetuneRequestSchema = z
  .object({
    base_model: z.string().min(1).openapi({ description: 'A served model whose manifest names a PyTorch checkpoint', example: 'fqgan-triple-vq16-tiny' }),
    base_version: z.number().int().positive().optional().openapi({ description: 'Default: the latest version' }),
    dataset: z.string().min(1).openapi({ description: 'The name of a folder of images directly under FQ_DATASETS_DIR (no path); symlinks in it may not lead outside FQ_DATASETS_DIR', example: 'my-photos' }),
    output_model: z.string().min(1).openapi({ description: 'Name to publish the result under (a new name starts at version 1)', example: 'my-tokenizer' }),
    hyperparameters: z
      .record(z.string(), z.unknown())
      .optional()
      .openapi({
        description: "The trainer's hyperparameters (`python -m fqgan.train --example-spec`); the trainer's defaults fill what is left out",
        example: { steps: 2000, batch_size: 8, lr: 1e-5, perceptual_weight: 1.0 },
      }),
    base_weights: z.enum(['model', 'ema']).optional(),
    device: z
      .record(z.string(), z.unknown())
      .optional()
      .openapi({ description: "The trainer's device settings: device (auto|cpu|cuda), precision, num_workers", example: { device: 'auto' } }),
  })
  .strict()
  .openapi('FinetuneRequest');
export type FinetuneRequestBody = z.infer<typeof FinetuneRequestSchema>;

const isoTime = z.string().openapi({ description: 'ISO 8601 time', example: '2025-01-01T12:00:00.000Z' });

export const JobSchema = z
  .object({
    id: z.string(),
    object: z.literal('fine_tuning.job'),
    status: JobStatusSchema,
    base_model: z.object({ name: z.string(), version: z.number().int() }),
    dataset: z.string(),
    output_model: z.string(),
    result: z.object({ model: z.string(), version: z.number().int() }).nullable().openapi({ description: 'The published model, once succeeded' }),
    hyperparameters: z.record(z.string(), z.unknown()),
    progress: z.object({
      step: z.number().int(),
      total_steps: z.number().int(),
      eta_seconds: z.number().nullable(),
      images_per_second: z.number().nullable(),
      losses: z.record(z.string(), z.number().nullable()).nullable(),
    }),
    attempts: z.number().int().openapi({ description: 'Trainer starts; more than 1 after a resume following a restart' }),
    created_at: isoTime,
    started_at: isoTime.nullable(),
    finished_at: isoTime.nullable(),
    cancel_requested_at: isoTime.nullable(),
    error: z
      .object({
        message: z.string(),
        field: z.string().optional(),
        exit_code: z.number().int().nullable().optional(),
        signal: z.string().nullable().optional(),
        stderr_tail: z.string().optional(),
      })
      .nullable(),
  })
  .openapi('FineTuningJob');

export const JobListSchema = z
  .object({
    object: z.literal('list'),
    data: z.array(JobSchema),
    has_more: z.boolean(),
    next_cursor: z.string().nullable().openapi({ description: 'Pass as `after` for the next page' }),
  })
  .openapi('FineTuningJobList');

export const JobListQuerySchema = z.object({
  status: JobStatusSchema.optional(),
  after: z.string().optional().openapi({ description: 'The id of the last job of the previous page' }),
  limit: z.coerce.number().int().min(1).max(100).default(20),
});

export const JobIdParamsSchema = z.object({ id: z.string().openapi({ example: 'ftjob-0123456789abcdef0123' }) });

export const JobEventSchema = z
  .object({
    id: z.number().int().openapi({ description: 'Increasing; the SSE event id and the `after` cursor' }),
    job_id: z.string(),
    type: z.string().openapi({
      description:
        "The trainer's events (started, progress, checkpoint, eval, exported, finished, cancelled, error, log) and the service's (queued, status, cancel_requested, recovered, interrupted)",
    }),
    created_at: isoTime,
    data: z.record(z.string(), z.unknown()),
  })
  .openapi('FineTuningJobEvent');

export const JobEventPageSchema = z
  .object({ object: z.literal('list'), data: z.array(JobEventSchema), has_more: z.boolean(), next_cursor: z.number().int().nullable() })
  .openapi('FineTuningJobEventList');

export const JobEventsQuerySchema = z.object({
  after: z.coerce.number().int().nonnegative().optional().openapi({ description: 'Events after this event id (SSE: or the Last-Event-ID header)' }),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  stream: z.enum(['true', 'false']).optional().openapi({ description: '`true` (or `Accept: text/event-stream`): a live Server-Sent Events stream that ends with the job' }),
});

export const JobCheckpointListSchema = z
  .object({
    object: z.literal('list'),
    data: z.array(z.object({ step: z.number().int(), file: z.string(), created_at: isoTime, available: z.boolean().openapi({ description: 'False once the trainer pruned it (keep_checkpoints)' }) })),
  })
  .openapi('FineTuningJobCheckpointList');

export const JobMetricsSchema = z
  .object({
    job_id: z.string(),
    steps: z.array(
      z.object({
        step: z.number().int(),
        time: isoTime,
        losses: z.record(z.string(), z.number().nullable()),
        usage: z.record(z.string(), z.number().nullable()),
        images_per_s: z.number().nullable(),
      }),
    ),
    evals: z.array(z.object({ step: z.number().int(), time: isoTime }).catchall(z.unknown())),
    has_more: z.boolean(),
    next_cursor: z.number().int().nullable().openapi({ description: 'The id of the last event of this page: pass as `after` for the next page' }),
  })
  .openapi('FineTuningJobMetrics');

export const JobMetricsQuerySchema = z.object({
  after: z.coerce.number().int().nonnegative().optional().openapi({ description: 'Metrics after this event id (`next_cursor` of the previous page)' }),
  limit: z.coerce
    .number()
    .int()
    .min(1)
    .max(10_000)
    .default(1000)
    .openapi({ description: 'Progress and eval events per page, together (default 1000, at most 10000)' }),
});

export const ModelVersionSchema = z
  .object({
    name: z.string(),
    version: z.number().int(),
    source: z.enum(['shipped', 'fine-tuned']),
    job_id: z.string().nullable(),
    created_at: isoTime.nullable(),
    default: z.boolean().openapi({ description: 'What requests without a model name get; cannot be deleted' }),
  })
  .openapi('ModelVersion');

export const ModelVersionListSchema = z.object({ object: z.literal('list'), data: z.array(ModelVersionSchema) }).openapi('ModelVersionList');
