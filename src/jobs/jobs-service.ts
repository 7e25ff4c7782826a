// The jobs feature as the HTTP layer sees it: one object bundling the store, the runner and validation.
import type { Db } from '../db/client.ts';
import type { JobEventRow, JobRow, JobStatus } from '../db/schema.ts';
import { FqError } from '../errors.ts';
import type { ModelRegistry } from '../inference/registry.ts';
import { createFinetuneJob, type Created, type CreateJobDeps } from './create-job.ts';
import { JobStore, type Page } from './job-store.ts';
import { deleteVersion, listVersions } from './model-versions.ts';
import { JobRunner } from './runner.ts';
import type { FinetuneRequest } from './spec.ts';

export interface JobsServiceOptions {
  db: Db;
  registry: ModelRegistry;
  python: string;
  datasetsDir: string;
  jobsDir: string;
  modelsDir: string;
  weightsDir: string;
  concurrency: number;
  cancelGraceMs: number;
}

export class JobsService {
  readonly store: JobStore;
  readonly runner: JobRunner;
  private readonly createDeps: CreateJobDeps;

  constructor(private readonly options: JobsServiceOptions) {
    this.store = new JobStore(options.db);
    this.runner = new JobRunner({ ...options, store: this.store });
    this.createDeps = { ...options, store: this.store };
  }

  async create(request: FinetuneRequest, idempotencyKey?: string): Promise<Created> {
    const created = await createFinetuneJob(this.createDeps, request, idempotencyKey);
    if (!created.replayed) this.runner.pump();
    return created;
  }

  get(id: string): JobRow {
    const job = this.store.getJob(id);
    if (!job) throw new FqError('not_found', `no job ${id}`);
    return job;
  }

  list(options: { status?: JobStatus; after?: string; limit: number }): Page<JobRow> {
    return this.store.listJobs(options);
  }

  cancel(id: string): JobRow {
    return this.runner.cancel(id);
  }

  events(id: string, options: { after?: number; limit: number; types?: string[] }): Page<JobEventRow> {
    this.get(id);
    return this.store.listEvents(id, options);
  }

  checkpoints(id: string) {
    this.get(id);
    return this.store.listCheckpoints(id);
  }

  versions(name: string) {
    return listVersions(this.store, this.options.registry, name);
  }

  deleteVersion(name: string, version: number): Promise<void> {
    return deleteVersion(this.store, this.options.registry, name, version);
  }
}
