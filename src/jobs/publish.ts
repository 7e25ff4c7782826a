// Makes a finished job's exported model a served version in the models folder (FQ_MODELS_DIR/<name>/<version>/):
// the number is reserved in the database first, the files are written beside their final place and
// renamed in (one atomic step, so a reader of a shared models volume never sees half a version), then
// the version is loaded and recorded live together with the job's success.
import { randomBytes } from 'node:crypto';
import { copyFile, cp, link, mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { JobRow } from '../db/schema.ts';
import { FqError } from '../errors.ts';
import type { ModelRegistry } from '../serving/model-registry.ts';
import { logger } from '../logger.ts';
import type { JobStore } from './job-store.ts';
import { removeIfEmpty, withNameLock } from './version-folders.ts';
import { outputNameRefusal } from './model-versions.ts';

export interface PublishDeps {
  store: JobStore;
  registry: ModelRegistry;
  /** Where versions are published: the models folder the replicas serve from. */
  modelsDir: string;
}

/** Staging folders are hidden, and named so that nothing takes them for a version number. */
const STAGING_PREFIX = '.tmp-';

/** Copies, loads and records the model; the job becomes `succeeded` in the same transaction as the version goes live. */
export async function publishJobModel(deps: PublishDeps, job: JobRow, exportedDir: string): Promise<JobRow> {
  const name = job.outputModel;
  const refusal = await outputNameRefusal(deps, name);
  if (refusal) throw new FqError('conflict', refusal);
  const served = deps.registry.list().filter((m) => m.name === name).map((m) => m.version);
  // Reserved before any file is written: a second job finishing meanwhile gets the next number.
  const { version, dir: target } = deps.store.reserveVersion(name, job.id, Math.max(0, ...served), (v) => path.join(deps.modelsDir, name, String(v)));
  return withNameLock(name, async () => {
    try {
      if (await exists(target)) {
        // Only this reservation's own rename puts a folder here, so it is complete: a crash came after it.
        logger.warn({ job: job.id, model: name, version, dir: target }, 'the version folder was already in place; publishing it');
      } else {
        await writeVersionFolder(exportedDir, target);
      }
      // The hot pickup of this instance may have found the renamed folder first.
      if (deps.registry.servedFrom(name, version) !== target) await deps.registry.load(name, version, target);
    } catch (err) {
      deps.store.markVersionDeleted(name, version); // the number stays used, never handed out again
      await rm(target, { recursive: true, force: true });
      await removeIfEmpty(path.dirname(target));
      throw err;
    }
    const row = deps.store.publishVersion(name, version, job.id, new Date());
    logger.info({ job: job.id, model: name, version, dir: target }, 'fine-tuned model published');
    return row;
  });
}

/** Writes the folder under a staging name in the same parent (same filesystem), then renames it into place. */
async function writeVersionFolder(exportedDir: string, target: string): Promise<void> {
  const staging = path.join(path.dirname(target), `${STAGING_PREFIX}${path.basename(target)}-${randomBytes(4).toString('hex')}`);
  await mkdir(path.dirname(target), { recursive: true });
  try {
    await cp(exportedDir, staging, { recursive: true });
    await keepCheckpointWithModel(staging);
    await rename(staging, target);
  } catch (err) {
    await rm(staging, { recursive: true, force: true });
    throw err;
  }
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

/**
 * At start-up: reservations whose job ended without publishing are given up (their numbers stay used),
 * staging folders a crash left are removed, and every published version the database knows is served
 * (a broken one is logged, not fatal).
 */
export async function loadPublishedVersions(deps: PublishDeps): Promise<void> {
  for (const r of deps.store.abandonedReservations()) {
    deps.store.markVersionDeleted(r.name, r.version);
    logger.warn({ model: r.name, version: r.version, job: r.jobId }, 'gave up a version reserved by a job that did not publish it');
  }
  for (const name of new Set(deps.store.liveVersions().map((v) => v.name))) await removeStaging(path.join(deps.modelsDir, name));
  for (const v of deps.store.liveVersions()) {
    if (deps.registry.servedFrom(v.name, v.version) === v.dir) continue; // the models folder's pickup serves it already
    try {
      await deps.registry.load(v.name, v.version, v.dir);
    } catch (err) {
      logger.error({ err, model: v.name, version: v.version, dir: v.dir }, 'cannot load a fine-tuned model version; not serving it');
    }
  }
}

async function removeStaging(modelDir: string): Promise<void> {
  const names = await readdir(modelDir).catch(() => [] as string[]);
  for (const n of names.filter((n) => n.startsWith(STAGING_PREFIX))) await rm(path.join(modelDir, n), { recursive: true, force: true });
}

const exists = (p: string) => stat(p).then(() => true, () => false);
