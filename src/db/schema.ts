// The database schema (drizzle): fine-tuning jobs, their events and checkpoints, and published model versions.
import { index, integer, primaryKey, sqliteTable, text, uniqueIndex } from 'drizzle-orm/sqlite-core';

export const JOB_STATUSES = ['queued', 'running', 'succeeded', 'failed', 'cancelled'] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];
export const TERMINAL_STATUSES: readonly JobStatus[] = ['succeeded', 'failed', 'cancelled'];

export const jobs = sqliteTable(
  'jobs',
  {
    id: text('id').primaryKey(),
    status: text('status', { enum: JOB_STATUSES }).notNull(),
    baseModel: text('base_model').notNull(),
    baseVersion: integer('base_version').notNull(),
    dataset: text('dataset').notNull(), // as the request named it, relative to FQ_DATASETS_DIR
    outputModel: text('output_model').notNull(),
    /** The complete trainer spec (JSON), defaults filled in; `resume` is set when recovery continues a run. */
    spec: text('spec', { mode: 'json' }).$type<Record<string, unknown>>().notNull(),
    idempotencyKey: text('idempotency_key'),
    requestHash: text('request_hash'),
    createdAt: integer('created_at', { mode: 'timestamp_ms' }).notNull(),
    startedAt: integer('started_at', { mode: 'timestamp_ms' }),
    finishedAt: integer('finished_at', { mode: 'timestamp_ms' }),
    cancelRequestedAt: integer('cancel_requested_at', { mode: 'timestamp_ms' }),
    step: integer('step').notNull().default(0),
    totalSteps: integer('total_steps').notNull(),
    /** The last progress event's numbers (losses, usage, images_per_s, eta_s). */
    progress: text('progress', { mode: 'json' }).$type<Record<string, unknown>>(),
    /** How many times the trainer was started for this job (recovery resumes count). */
    attempts: integer('attempts').notNull().default(0),
    /** The trainer's pid (= its process group) while running; recovery kills a survivor of a crash. */
    pid: integer('pid'),
    resultVersion: integer('result_version'),
    error: text('error', { mode: 'json' }).$type<JobError>(),
  },
  (t) => [index('jobs_status_created_idx').on(t.status, t.createdAt), uniqueIndex('jobs_idempotency_key_idx').on(t.idempotencyKey)],
);

export interface JobError {
  message: string;
  field?: string;
  exit_code?: number | null;
  signal?: string | null;
  stderr_tail?: string;
}

export const jobEvents = sqliteTable(
  'job_events',
  {
    /** Global and increasing: the cursor of event pages and the SSE event id. */
    id: integer('id').primaryKey({ autoIncrement: true }),
    jobId: text('job_id')
      .notNull()
      .references(() => jobs.id, { onDelete: 'cascade' }),
    type: text('type').notNull(),
    data: text('data', { mode: 'json' }).$type<Record<string, unknown>>().notNull(),
    createdAt: integer('created_at', { mode: 'timestamp_ms' }).notNull(),
  },
  (t) => [index('job_events_job_idx').on(t.jobId, t.id)],
);

export const jobCheckpoints = sqliteTable(
  'job_checkpoints',
  {
    jobId: text('job_id')
      .notNull()
      .references(() => jobs.id, { onDelete: 'cascade' }),
    step: integer('step').notNull(),
    path: text('path').notNull(),
    createdAt: integer('created_at', { mode: 'timestamp_ms' }).notNull(),
  },
  (t) => [primaryKey({ columns: [t.jobId, t.step] })],
);

/** `reserved`: the number is taken before any file is written; `live` once the files are in place and loaded. */
export const VERSION_STATES = ['reserved', 'live'] as const;

export const modelVersions = sqliteTable(
  'model_versions',
  {
    name: text('name').notNull(),
    version: integer('version').notNull(),
    dir: text('dir').notNull(),
    state: text('state', { enum: VERSION_STATES }).notNull().default('live'),
    jobId: text('job_id').references(() => jobs.id, { onDelete: 'set null' }),
    createdAt: integer('created_at', { mode: 'timestamp_ms' }).notNull(),
    /** Deleted versions keep their row so that a version number is never handed out twice. */
    deletedAt: integer('deleted_at', { mode: 'timestamp_ms' }),
  },
  (t) => [primaryKey({ columns: [t.name, t.version] })],
);

export type JobRow = typeof jobs.$inferSelect;
export type JobEventRow = typeof jobEvents.$inferSelect;
export type JobCheckpointRow = typeof jobCheckpoints.$inferSelect;
export type ModelVersionRow = typeof modelVersions.$inferSelect;
