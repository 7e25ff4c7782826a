// Makes a finished job's exported model a served version: copied into FQ_DATA_DIR/models/<name>/<version>, loaded, recorded.
import { randomBytes } from 'node:crypto';
import { cp, copyFile, link, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { JobRow } from '../db/schema.ts';
import type { ModelRegistry } from '../serving/model-registry.ts';
import { logger } from '../logger.ts';
import type { JobStore } from './job-store.ts';

export interface PublishDeps {
  store: JobStore;
  registry: ModelRegistry;
  modelsDir: string;
}

/** The next version of `name`: after every shipped, loaded or ever-published one. */
export function nextVersion(deps: PublishDeps, name: string): number {
  const served = deps.registry.list().filter((m) => m.name === name).map((m) => m.version);
  return Math.max(0, deps.store.highestVersion(name), ...served) + 1;
}

/** Copies, loads and records the model; the job becomes `succeeded` in the same transaction as the version row. */
export async function publishJobModel(deps: PublishDeps, job: JobRow, exportedDir: string): Promise<JobRow> {
  const name = job.outputModel;
  const version = nextVersion(deps, name);
  const target = path.join(deps.modelsDir, name, String(version));
  // Written beside its final place and renamed in (Triton-style): the loader never sees half a model.
  const staging = path.join(deps.modelsDir, name, `.tmp-${version}-${randomBytes(4).toString('hex')}`);
  await mkdir(staging, { recursive: true });
  try {
    await cp(exportedDir, staging, { recursive: true });
    await keepCheckpointWithModel(staging);
    await rm(target, { recursive: true, force: true }); // a leftover of a crash between rename and record
    await rename(staging, target);
  } catch (err) {
    await rm(staging, { recursive: true, force: true });
    throw err;
  }
  await deps.registry.load(name, version, target);
  const row = deps.store.publishVersion({ name, version, dir: target, jobId: job.id, createdAt: new Date() }, job.id, new Date());
  logger.info({ job: job.id, model: name, version }, 'fine-tuned model published');
  return row;
}

/**
 * The exported manifest points at the job's last checkpoint; the version gets its own copy (a hard
 * link when it can) so that it can be fine-tuned again after the job folder is gone.
 */
async function keepCheckpointWithModel(modelDir: string): Promise<void> {
  const manifestFile = path.join(modelDir, 'manifest.json');
  const manifest = JSON.parse(await readFile(manifestFile, 'utf8')) as { checkpoint?: string | null };
  if (!manifest.checkpoint) return;
  const source = path.resolve(modelDir, manifest.checkpoint);
  const local = path.join(modelDir, 'checkpoint.pt');
  if (source === local) return;
  await link(source, local).catch(() => copyFile(source, local));
  manifest.checkpoint = 'checkpoint.pt';
  await writeFile(manifestFile, JSON.stringify(manifest, null, 2) + '\n');
}

/** At start-up: serves every published version the database knows (a broken one is logged, not fatal). */
export async function loadPublishedVersions(deps: PublishDeps): Promise<void> {
  for (const v of deps.store.liveVersions()) {
    try {
      await deps.registry.load(v.name, v.version, v.dir);
    } catch (err) {
      logger.error({ err, model: v.name, version: v.version, dir: v.dir }, 'cannot load a fine-tuned model version; not serving it');
    }
  }
}
