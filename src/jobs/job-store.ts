// The one owner of the jobs tables: every read and write of jobs, events, checkpoints and versions goes here.
import { and, asc, desc, eq, gt, inArray, isNull, lt, or, sql } from 'drizzle-orm';
import { EventEmitter } from 'node:events';
import type { Db } from '../db/client.ts';
import {
  jobCheckpoints,
  jobEvents,
  jobs,
  modelVersions,
  type JobCheckpointRow,
  type JobEventRow,
  type JobRow,
  type JobStatus,
  type ModelVersionRow,
} from '../db/schema.ts';

export type NewJob = typeof jobs.$inferInsert;
export type JobPatch = Partial<Omit<JobRow, 'id'>>;

export interface Page<T> {
  data: T[];
  hasMore: boolean;
}

/**
 * The one row an INSERT or UPDATE ... RETURNING gave. Always through .all(), never .get(): better-sqlite3's
 * get() takes the first row and resets the statement, which drops the error of a commit that then fails
 * (SQLITE_FULL on a full disk): the write is lost and the row comes back as if it had been saved.
 */
function written<T>(rows: T[]): T | undefined {
  return rows[0];
}

export class JobStore {
  /** 'event' (JobEventRow) after every insert, and 'job' (JobRow) after every status change: for live streams. */
  readonly changes = new EventEmitter().setMaxListeners(0);

  constructor(readonly db: Db) {}

  insertJob(job: NewJob): JobRow {
    return written(this.db.insert(jobs).values(job).returning().all())!;
  }

  getJob(id: string): JobRow | undefined {
    return this.db.select().from(jobs).where(eq(jobs.id, id)).get();
  }

  findByIdempotencyKey(key: string): JobRow | undefined {
    return this.db.select().from(jobs).where(eq(jobs.idempotencyKey, key)).get();
  }

  /** Newest first; `after` is the id of the last job of the previous page. */
  listJobs(options: { status?: JobStatus; after?: string; limit: number }): Page<JobRow> {
    const conditions = [];
    if (options.status) conditions.push(eq(jobs.status, options.status));
    if (options.after) {
      const last = this.getJob(options.after);
      if (last) conditions.push(or(lt(jobs.createdAt, last.createdAt), and(eq(jobs.createdAt, last.createdAt), lt(jobs.id, last.id))));
    }
    const rows = this.db
      .select()
      .from(jobs)
      .where(and(...conditions))
      .orderBy(desc(jobs.createdAt), desc(jobs.id))
      .limit(options.limit + 1)
      .all();
    return { data: rows.slice(0, options.limit), hasMore: rows.length > options.limit };
  }

  jobsWithStatus(...statuses: JobStatus[]): JobRow[] {
    return this.db.select().from(jobs).where(inArray(jobs.status, statuses)).orderBy(asc(jobs.createdAt), asc(jobs.id)).all();
  }

  updateJob(id: string, patch: JobPatch): JobRow {
    const row = written(this.db.update(jobs).set(patch).where(eq(jobs.id, id)).returning().all())!;
    if (patch.status) this.changes.emit('job', row);
    return row;
  }

  /** Moves a job from one status to another only if it still has the first (a cancel and a start can race). */
  transition(id: string, from: JobStatus[], patch: JobPatch & { status: JobStatus }): JobRow | undefined {
    const row = written(
      this.db
        .update(jobs)
        .set(patch)
        .where(and(eq(jobs.id, id), inArray(jobs.status, from)))
        .returning()
        .all(),
    );
    if (row) this.changes.emit('job', row);
    return row;
  }

  /**
   * A status change and its event in one transaction (both saved or neither): what a job's outcome needs
   * when the disk may be full. Undefined (nothing written) if the job no longer has a status of `from`.
   */
  record(id: string, from: JobStatus[], patch: JobPatch & { status: JobStatus }, event: { type: string; data: Record<string, unknown> }): JobRow | undefined {
    const saved = this.db.transaction((tx) => {
      const row = written(
        tx
          .update(jobs)
          .set(patch)
          .where(and(eq(jobs.id, id), inArray(jobs.status, from)))
          .returning()
          .all(),
      );
      if (!row) return undefined;
      const added = written(tx.insert(jobEvents).values({ jobId: id, type: event.type, data: event.data, createdAt: new Date() }).returning().all())!;
      return { row, added };
    });
    if (!saved) return undefined;
    this.changes.emit('job', saved.row);
    this.changes.emit('event', saved.added);
    return saved.row;
  }

  addEvent(jobId: string, type: string, data: Record<string, unknown>, createdAt = new Date()): JobEventRow {
    const row = written(this.db.insert(jobEvents).values({ jobId, type, data, createdAt }).returning().all())!;
    this.changes.emit('event', row);
    return row;
  }

  /** Oldest first, after event id `after`; `types` narrows to some event types. */
  listEvents(jobId: string, options: { after?: number; limit: number; types?: string[] }): Page<JobEventRow> {
    const rows = this.db
      .select()
      .from(jobEvents)
      .where(
        and(
          eq(jobEvents.jobId, jobId),
          options.after !== undefined ? gt(jobEvents.id, options.after) : undefined,
          options.types ? inArray(jobEvents.type, options.types) : undefined,
        ),
      )
      .orderBy(asc(jobEvents.id))
      .limit(options.limit + 1)
      .all();
    return { data: rows.slice(0, options.limit), hasMore: rows.length > options.limit };
  }

  addCheckpoint(jobId: string, step: number, path: string, createdAt = new Date()): void {
    this.db
      .insert(jobCheckpoints)
      .values({ jobId, step, path, createdAt })
      .onConflictDoUpdate({ target: [jobCheckpoints.jobId, jobCheckpoints.step], set: { path, createdAt } })
      .run();
  }

  listCheckpoints(jobId: string): JobCheckpointRow[] {
    return this.db.select().from(jobCheckpoints).where(eq(jobCheckpoints.jobId, jobId)).orderBy(asc(jobCheckpoints.step)).all();
  }

  // ---- model versions made by fine-tuning

  /** Versions being served: live and not deleted (reservations of publishes under way are not). */
  liveVersions(name?: string): ModelVersionRow[] {
    return this.db
      .select()
      .from(modelVersions)
      .where(and(isNull(modelVersions.deletedAt), eq(modelVersions.state, 'live'), name ? eq(modelVersions.name, name) : undefined))
      .orderBy(asc(modelVersions.name), asc(modelVersions.version))
      .all();
  }

  /** Every version row of `name` that is not deleted, reservations included. */
  versionRows(name: string): ModelVersionRow[] {
    return this.db
      .select()
      .from(modelVersions)
      .where(and(eq(modelVersions.name, name), isNull(modelVersions.deletedAt)))
      .all();
  }

  getVersion(name: string, version: number): ModelVersionRow | undefined {
    return this.db
      .select()
      .from(modelVersions)
      .where(and(eq(modelVersions.name, name), eq(modelVersions.version, version)))
      .get();
  }

  /**
   * Takes the next version number of `name` for `jobId` before any file is written: one immediate
   * transaction reads the highest number ever recorded (deleted and reserved ones included, so none is
   * handed out twice) and inserts the reservation; the primary key (name, version) refuses a second
   * taker. A job that already holds a reservation (a resume after a crash) gets it back.
   */
  reserveVersion(name: string, jobId: string, atLeast: number, dirOf: (version: number) => string): ModelVersionRow {
    return this.db.transaction(
      (tx) => {
        const held = tx
          .select()
          .from(modelVersions)
          .where(and(eq(modelVersions.name, name), eq(modelVersions.jobId, jobId), eq(modelVersions.state, 'reserved'), isNull(modelVersions.deletedAt)))
          .get();
        if (held) return held;
        const max = tx
          .select({ max: sql<number | null>`max(${modelVersions.version})` })
          .from(modelVersions)
          .where(eq(modelVersions.name, name))
          .get()?.max;
        const version = Math.max(max ?? 0, atLeast) + 1;
        return written(
          tx
            .insert(modelVersions)
            .values({ name, version, dir: dirOf(version), jobId, state: 'reserved', createdAt: new Date() })
            .returning()
            .all(),
        )!;
      },
      { behavior: 'immediate' },
    );
  }

  /** The reserved version becomes live and the job `succeeded`, in one transaction. */
  publishVersion(name: string, version: number, jobId: string, finishedAt: Date): JobRow {
    const row = this.db.transaction((tx) => {
      const published = written(
        tx
          .update(modelVersions)
          .set({ state: 'live' })
          .where(and(eq(modelVersions.name, name), eq(modelVersions.version, version), eq(modelVersions.jobId, jobId), isNull(modelVersions.deletedAt)))
          .returning()
          .all(),
      );
      if (!published) throw new Error(`${name} version ${version} is not reserved for job ${jobId}`);
      return written(
        tx
          .update(jobs)
          .set({ status: 'succeeded', resultVersion: version, finishedAt, pid: null })
          .where(eq(jobs.id, jobId))
          .returning()
          .all(),
      )!;
    });
    this.changes.emit('job', row);
    return row;
  }

  /** Reservations whose job will never publish them (it ended, or is gone): left by a crash or a failed publish. */
  abandonedReservations(): ModelVersionRow[] {
    const rows = this.db
      .select({ version: modelVersions, status: jobs.status })
      .from(modelVersions)
      .leftJoin(jobs, eq(jobs.id, modelVersions.jobId))
      .where(and(eq(modelVersions.state, 'reserved'), isNull(modelVersions.deletedAt)))
      .all();
    return rows.filter((r) => r.status !== 'queued' && r.status !== 'running').map((r) => r.version);
  }

  markVersionDeleted(name: string, version: number, deletedAt = new Date()): void {
    this.db
      .update(modelVersions)
      .set({ deletedAt })
      .where(and(eq(modelVersions.name, name), eq(modelVersions.version, version)))
      .run();
  }

  /** Jobs not yet finished that start from `name` `version`. */
  activeJobsOnBase(name: string, version: number): JobRow[] {
    return this.db
      .select()
      .from(jobs)
      .where(and(eq(jobs.baseModel, name), eq(jobs.baseVersion, version), inArray(jobs.status, ['queued', 'running'])))
      .all();
  }
}
