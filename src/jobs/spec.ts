// Builds the trainer spec of a fine-tuning job from the request, the base model and the service's layout.
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { FieldError } from '../errors.ts';

/** The spec fields of loss weights (trainer/fqgan/train/spec.py, Weights). */
export type WeightSlot = 'lpips_vgg' | 'lpips_lin' | 'dino' | 'clip';

/** Where the download caches hold a weight that FQ_WEIGHTS_DIR lacks (`fqtok pull training-weights`); undefined when they do not. */
export type WeightFinder = (slot: WeightSlot, variant: 'triple' | 'dual') => string | undefined;

export interface FinetuneRequest {
  base_model: string;
  base_version?: number;
  dataset: string;
  output_model: string;
  hyperparameters?: Record<string, unknown>;
  base_weights?: 'model' | 'ema';
  device?: Record<string, unknown>;
}

export interface SpecInputs {
  request: FinetuneRequest;
  defaults: Record<string, any>; // the trainer's --example-spec
  datasetDir: string;
  datasetsRoot: string;
  outputDir: string;
  baseCheckpoint: string;
  baseVariant: 'triple' | 'dual';
  basePreset?: string | null;
  weightsDir: string;
  findWeight?: WeightFinder;
  stopDeadlineMs: number;
}

/**
 * Loss weights come from FQ_WEIGHTS_DIR under fixed names, else from the download caches where
 * `fqtok pull training-weights` put them (the API never takes a server path). They are always named;
 * the trainer only requires the ones its enabled losses need, and says which file is missing.
 */
export function weightFiles(weightsDir: string, variant: 'triple' | 'dual', findWeight?: WeightFinder): Record<WeightSlot, string> {
  const named: Record<WeightSlot, string> = {
    lpips_vgg: path.join(weightsDir, 'vgg16.pth'),
    lpips_lin: path.join(weightsDir, 'lpips_vgg_v0.1.pth'),
    dino: path.join(weightsDir, 'dinov2-small'),
    clip: path.join(weightsDir, variant === 'triple' ? 'clip-vit-base-patch16' : 'clip-vit-large-patch14'),
  };
  for (const slot of Object.keys(named) as WeightSlot[]) {
    if (!existsSync(named[slot])) named[slot] = findWeight?.(slot, variant) ?? named[slot];
  }
  return named;
}

/** A complete spec: the trainer's defaults with the request's values over them. */
export function buildSpec(i: SpecInputs): Record<string, unknown> {
  return {
    ...i.defaults,
    dataset: i.datasetDir,
    datasets_root: i.datasetsRoot, // the trainer reads no file whose real path leaves it
    output_dir: i.outputDir,
    eval_dataset: null,
    base_checkpoint: i.baseCheckpoint,
    base_weights: i.request.base_weights ?? 'model',
    resume: null,
    // The trainer ends itself this long after SIGTERM, so it stops in time even when the service is gone.
    stop_deadline_s: i.stopDeadlineMs / 1000,
    model: { ...i.defaults.model, preset: i.basePreset ?? i.defaults.model?.preset, variant: i.baseVariant },
    hyperparameters: { ...i.defaults.hyperparameters, ...i.request.hyperparameters },
    weights: weightFiles(i.weightsDir, i.baseVariant, i.findWeight),
    device: { ...i.defaults.device, ...i.request.device },
  };
}

/** The trainer names spec fields; the caller knows request fields. Server paths are not echoed back. */
export function toRequestField(problem: FieldError, paths: { datasetDir: string; dataset: string }): FieldError {
  const message = problem.message.replaceAll(paths.datasetDir, paths.dataset).replaceAll('datasets_root', 'the datasets root');
  if (problem.field === 'base_checkpoint' || problem.field === 'model.variant' || problem.field === 'base_weights') {
    return { field: problem.field === 'base_weights' ? 'base_weights' : 'base_model', message };
  }
  if (problem.field === 'spec') return { field: 'body', message };
  if (problem.field.startsWith('weights.') && / not found: /.test(message)) {
    return { field: problem.field, message: `${message} (run \`fqtok pull training-weights\`, or put the file there)` };
  }
  return { field: problem.field, message };
}
