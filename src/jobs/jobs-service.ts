// The jobs feature as the HTTP layer and the server see it: the one door to the store, the runner and validation.
import { openDatabase, type Db } from '../db/client.ts';
import { logger } from '../logger.ts';
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
import { describeFault, faultRefusal, storageFault } from './storage-fault.ts';

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
    // What recovery decides is kept and shown even when a full disk cannot take it yet.
    await recoverInterruptedJobs({ store: this.store, recorder: this.runner.recorder, jobsDir, graceMs: cancelGraceMs });
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
    const fault = this.runner.recorder.faulted;
    if (fault) throw faultRefusal(fault, 'creating the job');
    const created = await writing('creating the job', () => createFinetuneJob(this.createDeps, request, idempotencyKey));
    if (!created.replayed) this.runner.pump();
    return created;
  }

  /** The job, with an outcome a full or read-only disk could not take yet laid over it. */
  get(id: string): JobRow {
    const job = this.store.getJob(id);
    if (!job) throw new FqError('not_found', `no job ${id}`);
    return this.runner.recorder.overlay(job);
  }

  list(options: { status?: JobStatus; after?: string; limit: number }): Page<JobRow> {
    const page = this.store.listJobs(options);
    return { ...page, data: page.data.map((job) => this.runner.recorder.overlay(job)) };
  }

  cancel(id: string): JobRow {
    try {
      return this.runner.cancel(id);
    } catch (err) {
      const fault = storageFault(err);
      throw fault ? faultRefusal(fault, 'cancelling the job') : err;
    }
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
    return writing('deleting the version', () => deleteVersion(this.store, this.options.registry, name, version));
  }
}

/** Runs a request's writes; a full or read-only data directory is its 507 or 503, never a 500. */
async function writing<T>(doing: string, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    const fault = storageFault(err);
    throw fault ? faultRefusal(fault, doing) : err;
  }
}

export interface OpenJobsOptions extends Omit<JobsServiceOptions, 'db'> {
  /** The SQLite file (FQ_DATA_DIR/fqtok.db). */
  database: string;
}

/**
 * The jobs feature on its database, recovered (every published version served, interrupted jobs requeued
 * or failed); or, when the data directory is read-only or full so that the database cannot be opened,
 * the refusal its routes answer with: inference serves without it.
 */
export async function openJobs(options: OpenJobsOptions): Promise<{ jobs: JobsService; db: Db } | { unavailable: FqError }> {
  let db: Db;
  try {
    db = openDatabase(options.database); // migrations run here, before anything listens
  } catch (err) {
    const fault = storageFault(err);
    if (!fault) throw err;
    logger.error({ fault, database: options.database }, `${describeFault(fault)}: fine-tuning jobs and fine-tuned models are unavailable`);
    return { unavailable: faultRefusal(fault, 'opening the jobs database') };
  }
  const jobs = new JobsService({ ...options, db });
  await jobs.recover();
  return { jobs, db };
}
