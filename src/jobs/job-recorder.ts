// Records what happens to jobs when the data directory may be full or read-only. An outcome (a status and
// its event) that the database cannot take is kept here, laid over the stored job so the API tells the
// truth, and saved as soon as the disk takes writes again; meanwhile no queued job starts.
import { mkdirSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { JobRow, JobStatus } from '../db/schema.ts';
import { logger } from '../logger.ts';
import type { JobPatch, JobStore } from './job-store.ts';
import { describeFault, storageFault, type StorageFault } from './storage-fault.ts';

export interface Outcome {
  from: JobStatus[];
  patch: JobPatch & { status: JobStatus };
  event: { type: string; data: Record<string, unknown> };
}

export interface JobRecorderOptions {
  store: JobStore;
  /** A folder in the data directory (the jobs folder), where a probe file shows that writes work again. */
  probeDir: string;
  /** How often to try again while the data directory fails. */
  retryMs?: number;
  /** Called when writes work again (all kept outcomes saved): the queue may move. */
  onRecovered(): void;
}

/** Enough to show that a checkpoint-sized write is not about to fail the same way. */
const PROBE_BYTES = 1 << 20;

export class JobRecorder {
  private fault: StorageFault | undefined;
  private readonly unsaved = new Map<string, Outcome>();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly options: JobRecorderOptions) {}

  /** Why the data directory cannot be written now, if it cannot. */
  get faulted(): StorageFault | undefined {
    return this.fault;
  }

  /** Saves an outcome; one the disk refuses is kept (and shown) until it can be saved. Other errors are thrown. */
  record(id: string, outcome: Outcome): void {
    try {
      this.options.store.record(id, outcome.from, outcome.patch, outcome.event);
      this.unsaved.delete(id);
    } catch (err) {
      const fault = storageFault(err);
      if (!fault) throw err;
      this.unsaved.set(id, outcome);
      logger.error({ job: id, status: outcome.patch.status, fault }, `cannot save the job's ${outcome.patch.status} status: ${describeFault(fault)}; kept until it can be saved`);
      this.noteFault(fault);
      const row = this.options.store.getJob(id);
      if (row) this.options.store.changes.emit('job', this.overlay(row));
    }
  }

  /** A write failed on the data directory (here or in the trainer): the queue waits until writes work again. */
  noteFault(fault: StorageFault): void {
    if (!this.fault) logger.error({ fault }, `${describeFault(fault)}: no job starts until it can be written again`);
    this.fault = fault;
    this.timer ??= setInterval(() => {
      try {
        this.retry();
      } catch (err) {
        logger.error({ err }, 'cannot save the jobs kept for a full or read-only data directory');
      }
    }, this.options.retryMs ?? 5_000).unref();
  }

  /** The job as stored, with an outcome not yet saved laid over it. */
  overlay(row: JobRow): JobRow {
    const outcome = this.unsaved.get(row.id);
    return outcome && outcome.from.includes(row.status) ? { ...row, ...outcome.patch } : row;
  }

  close(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private retry(): void {
    for (const [id, outcome] of this.unsaved) {
      try {
        this.options.store.record(id, outcome.from, outcome.patch, outcome.event);
        this.unsaved.delete(id);
        logger.info({ job: id, status: outcome.patch.status }, "the job's status is saved");
      } catch (err) {
        if (!storageFault(err)) throw err;
        return; // still failing: next time
      }
    }
    const probe = path.join(this.options.probeDir, '.fqtok-write-probe');
    try {
      mkdirSync(this.options.probeDir, { recursive: true });
      writeFileSync(probe, Buffer.alloc(PROBE_BYTES));
      unlinkSync(probe);
    } catch (err) {
      try {
        unlinkSync(probe);
      } catch {
        /* never written */
      }
      if (storageFault(err)) return;
      throw err;
    }
    logger.info({ fault: this.fault }, 'the data directory takes writes again: queued jobs may start');
    this.fault = undefined;
    this.close();
    this.options.onRecovered();
  }
}
