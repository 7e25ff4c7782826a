// The jobs feature as the HTTP layer and the server see it: the one door to the store, the runner and validation.
import type { Db } from '../db/client.ts';
import type { JobEventRow, JobRow, JobStatus } from '../db/schema.ts';
import { FqError } from '../errors.ts';
import type { ModelRegistry } from '../serving/model-registry.ts';
import { createFinetuneJob, type Created, type CreateJobDeps } from './create-job.ts';
import { JobStore, type Page } from './job-store.ts';
import { deleteVersion, listVersions } from './model-versions.ts';
import { loadPublishedVersions } from './publish.ts';
import { recoverInterruptedJobs } from './recovery.ts';
import { JobRunner } from './runner.ts';
import type { FinetuneRequest, WeightFinder } from './spec.ts';

export interface JobsServiceOptions {
  db: Db;
  registry: ModelRegistry;
  python: string;
  datasetsDir: string;
  jobsDir: string;
  modelsDir: string;
  weightsDir: string;
  /** Weights FQ_WEIGHTS_DIR lacks, in the download caches (`fqtok pull training-weights`). */
  findWeight?: WeightFinder;
  concurrency: number;
  cancelGraceMs: number;
}

export class JobsService {
  private readonly store: JobStore;
  private readonly runner: JobRunner;
  private readonly createDeps: CreateJobDeps;

  constructor(private readonly options: JobsServiceOptions) {
    this.store = new JobStore(options.db);
    this.runner = new JobRunner({ ...options, store: this.store });
    this.createDeps = { ...options, store: this.store };
  }

  /** At start-up, before listening: serves every published version and requeues (or fails) the jobs a previous process left running. */
  async recover(): Promise<void> {
    const { registry, modelsDir, jobsDir, cancelGraceMs } = this.options;
    await loadPublishedVersions({ store: this.store, registry, modelsDir });
    await recoverInterruptedJobs({ store: this.store, jobsDir, graceMs: cancelGraceMs });
  }

  /** Starts the queued jobs there is room for; later ones start as jobs are queued and end. */
  start(): void {
    this.runner.pump();
  }

  /** Service shutdown: running trainers checkpoint and stop; their jobs resume at the next start. */
  stop(): Promise<void> {
    return this.runner.stop();
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

  /** Calls `onEvent` with each new event of job `id` from now on; returns the function that stops it. */
  subscribe(id: string, onEvent: (event: JobEventRow) => void): () => void {
    const listener = (event: JobEventRow) => {
      if (event.jobId === id) onEvent(event);
    };
    this.store.changes.on('event', listener);
    return () => this.store.changes.off('event', listener);
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
