// Runs queued jobs, FQ_JOB_CONCURRENCY at a time: spawns the trainer, records its events, publishes or fails.
import { mkdirSync, writeFileSync } from 'node:fs';
import { FqError } from '../errors.ts';
import { TERMINAL_STATUSES, type JobError, type JobRow } from '../db/schema.ts';
import type { ModelRegistry } from '../serving/model-registry.ts';
import { logger } from '../logger.ts';
import type { JobStore } from './job-store.ts';
import { jobPaths } from './layout.ts';
import { JobRecorder } from './job-recorder.ts';
import { publishJobModel } from './publish.ts';
import { describeFault, storageFault, storageFaultInMessage, type StorageFault } from './storage-fault.ts';
import { num, parseTrainerLine, str, type TrainerEvent } from './trainer-events.ts';
import { TrainerProcess, type TrainerExit } from './trainer-process.ts';

export interface RunnerOptions {
  store: JobStore;
  registry: ModelRegistry;
  python: string;
  jobsDir: string;
  modelsDir: string;
  concurrency: number;
  cancelGraceMs: number;
}

interface Active {
  trainer?: TrainerProcess; // absent when the trainer could not be started
  exportedDir?: string;
  lastError?: { message: string; field?: string };
  /** The data directory failed a write of this job's (its events, or the trainer's own files): the true cause. */
  storageFault?: StorageFault;
  done: Promise<void>;
}

export class JobRunner {
  private readonly active = new Map<string, Active>();
  private stopping = false;
  /** Outcomes saved, or kept while the data directory is full or read-only. */
  readonly recorder: JobRecorder;

  constructor(private readonly options: RunnerOptions) {
    this.recorder = new JobRecorder({ store: options.store, probeDir: options.jobsDir, onRecovered: () => this.pump() });
  }

  /** Whether this process runs the job's trainer now. */
  isActive(id: string): boolean {
    return this.active.has(id);
  }

  /** Starts queued jobs while there is room; called at start, after a job is queued and after one ends. */
  pump(): void {
    if (this.stopping || this.recorder.faulted) return; // a full or read-only disk would fail them at once
    const { store, concurrency } = this.options;
    while (this.active.size < concurrency) {
      const next = store.jobsWithStatus('queued').find((j) => !this.active.has(j.id));
      if (!next) return;
      this.launch(next);
    }
  }

  /** Queued jobs end at once; a running one gets SIGTERM (it checkpoints), then SIGKILL after the grace period. */
  cancel(id: string): JobRow {
    const { store } = this.options;
    const job = store.getJob(id);
    if (!job) throw new FqError('not_found', `no job ${id}`);
    if (TERMINAL_STATUSES.includes(job.status)) throw new FqError('conflict', `job ${id} is already ${job.status}`);
    const now = new Date();
    const ended = store.record(id, ['queued'], { status: 'cancelled', cancelRequestedAt: now, finishedAt: now }, { type: 'status', data: { status: 'cancelled', reason: 'cancelled while queued' } });
    if (ended) return ended;
    const active = this.active.get(id);
    if (!job.cancelRequestedAt) store.addEvent(id, 'cancel_requested', {});
    const marked = store.updateJob(id, { cancelRequestedAt: job.cancelRequestedAt ?? now });
    active?.trainer?.terminate(this.options.cancelGraceMs);
    return marked;
  }

  /**
   * Service shutdown: trainers get SIGTERM (each saves a checkpoint) and their jobs stay `running`,
   * so that recovery at the next start resumes them.
   */
  async stop(): Promise<void> {
    this.stopping = true;
    this.recorder.close();
    const running = [...this.active.values()];
    for (const a of running) a.trainer?.terminate(this.options.cancelGraceMs);
    await Promise.allSettled(running.map((a) => a.done));
  }

  private launch(queued: JobRow): void {
    const { store } = this.options;
    let job: JobRow | undefined;
    try {
      const attempt = queued.attempts + 1;
      job = store.record(
        queued.id,
        ['queued'],
        { status: 'running', startedAt: queued.startedAt ?? new Date(), attempts: attempt },
        { type: 'status', data: { status: 'running', attempt, ...(queued.spec.resume ? { resumed_from: queued.spec.resume } : {}) } },
      );
    } catch (err) {
      const fault = storageFault(err);
      if (!fault) throw err;
      this.recorder.noteFault(fault); // the job stays queued; the queue waits for the disk
      return;
    }
    if (!job) return;
    const paths = jobPaths(this.options.jobsDir, job.id);
    let active: Active | undefined;
    try {
      // The database holds the spec (recovery may have set `resume`); the file is what the trainer reads.
      mkdirSync(paths.dir, { recursive: true });
      writeFileSync(paths.spec, JSON.stringify(job.spec, null, 2));
      const trainer = new TrainerProcess({
        python: this.options.python,
        args: ['--spec', paths.spec],
        stderrFile: paths.stderr,
        onLine: (line) => this.onLine(job!.id, active!, line),
        onStderrFileError: (err) => this.writeFailed(job!.id, active!, err),
      });
      if (trainer.pid) store.updateJob(job.id, { pid: trainer.pid });
      logger.info({ job: job.id, pid: trainer.pid, attempt: job.attempts }, 'trainer started');
      const done: Promise<void> = trainer.exited.then((exit) => this.finish(job!.id, active!, exit));
      active = { trainer, done };
    } catch (err) {
      active = { done: Promise.reject(err) };
    }
    const id = job.id;
    this.active.set(id, active);
    active.done
      .catch((err) => {
        const fault = storageFault(err);
        if (fault) this.recorder.noteFault(fault);
        logger.error({ err, job: id }, 'job runner failed');
        this.fail(id, { message: fault ? describeFault(fault) : `the service could not run the job: ${(err as Error).message}` });
      })
      .catch((err) => logger.error({ err, job: id }, 'cannot record the failure of a job'))
      .finally(() => {
        this.active.delete(id);
        this.pump();
      });
  }

  /**
   * A write of this job's failed (an event into the database, the trainer's stderr into its log). A full
   * or read-only data directory stops the trainer (it saves a checkpoint if it can) and becomes the cause
   * the job fails with; the service itself keeps serving.
   */
  private writeFailed(jobId: string, active: Active, err: unknown): void {
    const fault = storageFault(err);
    if (!fault) {
      logger.error({ err, job: jobId }, 'cannot record a trainer event');
      return;
    }
    this.recorder.noteFault(fault);
    if (active.storageFault) return;
    active.storageFault = fault;
    logger.error({ job: jobId, fault }, `${describeFault(fault)}: stopping the trainer`);
    active.trainer?.terminate(this.options.cancelGraceMs);
  }

  private onLine(jobId: string, active: Active, line: string): void {
    const event = parseTrainerLine(line);
    if (!event) return;
    if (this.stopping && event.type === 'cancelled') event.type = 'interrupted'; // a shutdown, not the user's cancel
    if (active.storageFault) return; // stopping for a full or read-only disk: nothing more is written
    try {
      this.apply(jobId, active, event);
      this.options.store.addEvent(jobId, event.type, event.data, event.time);
    } catch (err) {
      this.writeFailed(jobId, active, err);
    }
  }

  private apply(jobId: string, active: Active, { type, data, time }: TrainerEvent): void {
    const { store } = this.options;
    if (type === 'started') {
      const steps = num(data.steps);
      if (steps !== undefined) store.updateJob(jobId, { totalSteps: steps });
    } else if (type === 'progress') {
      const { losses, usage, images_per_s, eta_s } = data;
      store.updateJob(jobId, { step: num(data.step) ?? 0, progress: { losses, usage, images_per_s, eta_s } });
    } else if (type === 'checkpoint') {
      const step = num(data.step);
      const path = str(data.path);
      if (step !== undefined && path) store.addCheckpoint(jobId, step, path, time);
    } else if (type === 'exported') {
      active.exportedDir = str(data.path);
    } else if (type === 'error') {
      active.lastError = { message: str(data.message) ?? 'the trainer reported an error', field: str(data.field) };
      const fault = storageFaultInMessage(active.lastError.message); // e.g. its checkpoint hit ENOSPC
      if (fault) this.recorder.noteFault(fault);
    }
  }

  private async finish(jobId: string, active: Active, exit: TrainerExit): Promise<void> {
    const { store } = this.options;
    const job = store.getJob(jobId);
    if (!job || job.status !== 'running') return;
    logger.info({ job: jobId, ...exit }, 'trainer exited');
    if (this.stopping && !job.cancelRequestedAt && !active.storageFault) return; // left `running` for recovery to resume
    if (job.cancelRequestedAt) {
      this.recorder.record(jobId, { from: ['running'], patch: { status: 'cancelled', finishedAt: new Date(), pid: null }, event: { type: 'status', data: { status: 'cancelled' } } });
      return;
    }
    if (active.storageFault) {
      const trainerSaid = active.lastError ? `; the trainer said: ${active.lastError.message}` : '';
      return this.fail(jobId, { message: `${describeFault(active.storageFault)}${trainerSaid}`, exit_code: exit.code, signal: exit.signal });
    }
    if (exit.code === 0 && active.exportedDir) {
      try {
        await publishJobModel(this.options, job, active.exportedDir);
      } catch (err) {
        logger.error({ err, job: jobId }, 'cannot publish the fine-tuned model');
        return this.fail(jobId, { message: `the model was trained but could not be published: ${(err as Error).message}` });
      }
      const done = store.getJob(jobId)!;
      store.addEvent(jobId, 'status', { status: 'succeeded', model: done.outputModel, version: done.resultVersion });
      return;
    }
    const reason =
      active.lastError?.message ??
      (exit.code === 0 ? 'the trainer finished without exporting a model' : `the trainer exited with ${exit.signal ? `signal ${exit.signal}` : `code ${exit.code}`}`);
    this.fail(jobId, {
      message: reason,
      ...(active.lastError?.field ? { field: active.lastError.field } : {}),
      exit_code: exit.code,
      signal: exit.signal,
      stderr_tail: (active.trainer?.stderrTail ?? '').slice(-4000),
    });
  }

  private fail(jobId: string, error: JobError): void {
    this.recorder.record(jobId, {
      from: ['running', 'queued'],
      patch: { status: 'failed', finishedAt: new Date(), pid: null, error },
      event: { type: 'status', data: { status: 'failed', message: error.message } },
    });
  }
}
