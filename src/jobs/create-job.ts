// Validates a fine-tuning request against what the service knows and what the trainer accepts, then queues it.
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { FqError, type FieldError } from '../errors.ts';
import type { ModelRegistry } from '../serving/model-registry.ts';
import type { ServedModel } from '../serving/served-model.ts';
import type { JobRow } from '../db/schema.ts';
import { checkHoldsImages, resolveDataset, type DatasetFolder } from './dataset.ts';
import type { JobStore } from './job-store.ts';
import { jobPaths } from './layout.ts';
import { outputNameRefusal } from './model-versions.ts';
import { buildSpec, toRequestField, type FinetuneRequest, type WeightFinder } from './spec.ts';
import { checkSpec, trainerDefaults } from './trainer-check.ts';

export const MODEL_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export interface CreateJobDeps {
  store: JobStore;
  registry: ModelRegistry;
  python: string;
  datasetsDir: string;
  jobsDir: string;
  /** Where fine-tuned versions are published (FQ_MODELS_DIR); names of its own models are refused. */
  modelsDir: string;
  weightsDir: string;
  /** Weights FQ_WEIGHTS_DIR lacks, in the download caches. */
  findWeight?: WeightFinder;
  /** How long a stopping trainer may take to checkpoint and exit; the trainer enforces it itself too. */
  cancelGraceMs: number;
}

export interface Created {
  job: JobRow;
  /** True when an earlier request with the same Idempotency-Key made this job. */
  replayed: boolean;
}

export async function createFinetuneJob(deps: CreateJobDeps, request: FinetuneRequest, idempotencyKey?: string): Promise<Created> {
  const requestHash = createHash('sha256').update(JSON.stringify(request)).digest('hex');
  if (idempotencyKey) {
    const earlier = replay(deps.store, idempotencyKey, requestHash);
    if (earlier) return earlier;
  }

  const problems: FieldError[] = [];
  if (!MODEL_NAME_PATTERN.test(request.output_model)) {
    problems.push({ field: 'output_model', message: `must match ${MODEL_NAME_PATTERN.source} (a folder name)` });
  } else {
    const refusal = await outputNameRefusal(deps, request.output_model);
    if (refusal) problems.push({ field: 'output_model', message: refusal });
  }
  const base = baseModel(deps.registry, request, problems);
  const datasetFolder = await dataset(deps.datasetsDir, request.dataset, problems);
  if (problems.length || !base || !datasetFolder) throw invalid(problems);
  const datasetDir = datasetFolder.dir;

  const id = `ftjob-${randomBytes(10).toString('hex')}`;
  const paths = jobPaths(deps.jobsDir, id);
  const spec = buildSpec({
    request,
    defaults: await trainerDefaults(deps.python),
    datasetDir,
    datasetsRoot: datasetFolder.root,
    outputDir: paths.output,
    baseCheckpoint: base.checkpoint,
    baseVariant: base.served.model.manifest.variant,
    basePreset: base.served.model.manifest.preset,
    weightsDir: deps.weightsDir,
    findWeight: deps.findWeight,
    stopDeadlineMs: deps.cancelGraceMs,
  });
  await mkdir(paths.dir, { recursive: true });
  try {
    await writeFile(paths.spec, JSON.stringify(spec, null, 2));
    const refused = await checkSpec(deps.python, paths.spec);
    if (refused.length) throw invalid(refused.map((p) => toRequestField(p, { datasetDir, dataset: request.dataset })));
    const steps = (spec.hyperparameters as { steps?: unknown }).steps;
    const job = deps.store.insertJob({
      id,
      status: 'queued',
      baseModel: base.served.model.name,
      baseVersion: base.served.model.version,
      dataset: request.dataset,
      outputModel: request.output_model,
      spec,
      idempotencyKey: idempotencyKey ?? null,
      requestHash,
      createdAt: new Date(),
      totalSteps: typeof steps === 'number' ? steps : 0,
    });
    deps.store.addEvent(id, 'queued', { base_model: job.baseModel, base_version: job.baseVersion, output_model: job.outputModel });
    return { job, replayed: false };
  } catch (err) {
    await rm(paths.dir, { recursive: true, force: true });
    // Two retries with one key raced past the first lookup: the loser answers with the winner's job.
    if (idempotencyKey && /UNIQUE constraint failed: jobs\.idempotency_key/.test(String(err))) {
      const earlier = replay(deps.store, idempotencyKey, requestHash);
      if (earlier) return earlier;
    }
    throw err;
  }
}

function replay(store: JobStore, key: string, requestHash: string): Created | undefined {
  const earlier = store.findByIdempotencyKey(key);
  if (!earlier) return undefined;
  if (earlier.requestHash !== requestHash) {
    // As the IETF Idempotency-Key draft says: a reused key with a different body is the client's mistake.
    throw new FqError('validation', 'this Idempotency-Key was used with a different request body', {
      fields: [{ field: 'Idempotency-Key', message: `already used by job ${earlier.id} with a different body` }],
    });
  }
  return { job: earlier, replayed: true };
}

function invalid(problems: FieldError[]): FqError {
  const summary = problems.slice(0, 5).map((p) => `${p.field}: ${p.message}`).join('; ');
  return new FqError('validation', `the fine-tuning job was refused: ${summary}`, { fields: problems });
}

function baseModel(registry: ModelRegistry, request: FinetuneRequest, problems: FieldError[]) {
  let served: ServedModel;
  try {
    served = registry.get(request.base_model, request.base_version);
  } catch (err) {
    if (!(err instanceof FqError)) throw err;
    problems.push({ field: request.base_version ? 'base_version' : 'base_model', message: err.message });
    return undefined;
  }
  const { checkpoint } = served.model.manifest;
  if (!checkpoint) {
    problems.push({ field: 'base_model', message: `model '${request.base_model}' has no PyTorch checkpoint in its manifest, so it cannot be fine-tuned` });
    return undefined;
  }
  const file = path.resolve(served.model.dir, checkpoint);
  if (!existsSync(file)) {
    problems.push({ field: 'base_model', message: `the checkpoint of model '${request.base_model}' is missing on the server` });
    return undefined;
  }
  return { served, checkpoint: file };
}

async function dataset(root: string, name: string, problems: FieldError[]): Promise<DatasetFolder | undefined> {
  try {
    const folder = await resolveDataset(root, name);
    await checkHoldsImages(folder, name);
    return folder;
  } catch (err) {
    if (!(err instanceof FqError) || err.kind !== 'validation') throw err;
    problems.push(...(err.fields ?? []));
    return undefined;
  }
}
