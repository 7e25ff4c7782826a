// A job's sample reconstruction grids: the PNGs the trainer writes per evaluation (trainer/fqgan/sample_grid.py).
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { FqError } from '../errors.ts';
import { jobPaths } from './layout.ts';

const SAMPLE_FILE = /^step-(\d+)\.png$/;

export interface JobSample {
  step: number;
  createdAt: Date;
}

/** The grids on disk, oldest step first (none before the first evaluation). */
export async function listSamples(jobsDir: string, id: string): Promise<JobSample[]> {
  const dir = jobPaths(jobsDir, id).samples;
  const names = await readdir(dir).catch(() => [] as string[]);
  const samples: JobSample[] = [];
  for (const name of names) {
    const match = SAMPLE_FILE.exec(name);
    if (!match) continue; // e.g. a grid still being written (.partial)
    const info = await stat(path.join(dir, name)).catch(() => undefined);
    if (info?.isFile()) samples.push({ step: Number(match[1]), createdAt: info.mtime });
  }
  return samples.sort((a, b) => a.step - b.step);
}

/** The PNG of the grid at `step`; the path is built from an integer, never from what the caller sent. */
export async function readSample(jobsDir: string, id: string, step: number): Promise<Buffer> {
  const file = path.join(jobPaths(jobsDir, id).samples, `step-${String(step).padStart(6, '0')}.png`);
  try {
    return await readFile(file);
  } catch {
    throw new FqError('not_found', `job ${id} has no sample grid at step ${step}`);
  }
}
