// Start-up recovery: no job stays `running` from a previous process; each resumes from its last checkpoint or fails.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { JobRow } from '../db/schema.ts';
import { logger } from '../logger.ts';
import { signalGroup } from '../python-launcher.ts';
import type { JobRecorder } from './job-recorder.ts';
import type { JobStore } from './job-store.ts';
import { jobPaths } from './layout.ts';

/** A job that keeps crashing the service (or being crashed) is not resumed forever. */
export const MAX_ATTEMPTS = 3;
const CHECKPOINT_NAME = /^(\d{7,})\.pt$/; // fqgan/train/checkpoint_store.py

export interface RecoveryOptions {
  store: JobStore;
  /** Saves each decision, or keeps (and shows) it while a full or read-only disk cannot take it. */
  recorder: JobRecorder;
  jobsDir: string;
  /** How long a surviving trainer may take to save its checkpoint after SIGTERM before SIGKILL. */
  graceMs: number;
}

export async function recoverInterruptedJobs(options: RecoveryOptions): Promise<void> {
  const { store } = options;
  for (const job of store.jobsWithStatus('running')) {
    const paths = jobPaths(options.jobsDir, job.id);
    await stopSurvivor(job, paths.spec, options.graceMs);
    const checkpoint = latestCheckpoint(paths.checkpoints);
    if (checkpoint && job.attempts < MAX_ATTEMPTS) {
      options.recorder.record(job.id, {
        from: ['running'],
        patch: { status: 'queued', pid: null, step: checkpoint.step, spec: { ...job.spec, resume: checkpoint.path } },
        event: { type: 'recovered', data: { action: 'resume', step: checkpoint.step, checkpoint: checkpoint.path, attempt: job.attempts + 1 } },
      });
      logger.warn({ job: job.id, step: checkpoint.step }, 'interrupted job queued to resume from its last checkpoint');
    } else {
      const message = checkpoint
        ? `the service stopped during the job ${job.attempts} times; not resuming it again`
        : 'the service stopped while the job was running, before the trainer saved a checkpoint to resume from';
      options.recorder.record(job.id, {
        from: ['running'],
        patch: { status: 'failed', pid: null, finishedAt: new Date(), error: { message } },
        event: { type: 'status', data: { status: 'failed', message } },
      });
      logger.warn({ job: job.id }, `interrupted job failed: ${message}`);
    }
  }
}

/**
 * The trainer gets SIGTERM when the service dies (see trainer-process.ts); this is the safety net for
 * one that is still there: the recorded process group, when /proc confirms it is this job's trainer.
 */
async function stopSurvivor(job: JobRow, specFile: string, graceMs: number): Promise<void> {
  if (!job.pid || !isTrainerOf(job.pid, specFile)) return;
  logger.warn({ job: job.id, pid: job.pid }, 'stopping a trainer left over from the previous run');
  signalGroup(job.pid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline && isTrainerOf(job.pid, specFile)) await sleep(100);
  signalGroup(job.pid, 'SIGKILL');
}

function isTrainerOf(pid: number, specFile: string): boolean {
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    const state = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0];
    return state !== 'Z' && cmdline.includes(specFile);
  } catch {
    return false; // gone (or no /proc: a pid alone could belong to anything now, so leave it)
  }
}

export function latestCheckpoint(dir: string): { step: number; path: string } | undefined {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return undefined;
  }
  const steps = names.map((n) => CHECKPOINT_NAME.exec(n)).filter((m) => m !== null).map((m) => Number(m[1]));
  if (!steps.length) return undefined;
  const step = Math.max(...steps);
  return { step, path: path.join(dir, `${String(step).padStart(7, '0')}.pt`) };
}
