// The weights fine-tuning's losses need, by name: where each officially comes from (torchvision's and
// LPIPS' own files, two Hub repositories), where the caches keep it, and how a job finds it there.
import { getRepoFolderName } from '@huggingface/hub';
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fetchHubFile, HubError, type Progress } from './hub-file.ts';
import type { HubSettings } from './hub-settings.ts';
import { downloadResumable } from './resumable-download.ts';
import { fileSha256 } from '../serving/model-check.ts';

/** The spec fields a weight fills (trainer/fqgan/train/spec.py, Weights). */
export type WeightSlot = 'lpips_vgg' | 'lpips_lin' | 'dino' | 'clip';

interface UrlWeight {
  kind: 'url';
  url: string;
  /** Its name in torch's cache (TORCH_HOME/hub/checkpoints), where torchvision looks for it too. */
  file: string;
  sha256: string;
  bytes: number;
  slot: WeightSlot;
}

interface HubWeight {
  kind: 'hub';
  repo: string;
  revision: string;
  /** config.json, then the first of the weight files the repository has. */
  weights: string[];
  slot: WeightSlot;
  variant?: 'triple' | 'dual';
}

export type TrainingWeight = UrlWeight | HubWeight;

// Checksums and sizes as published for these files (torchvision names its files by their sha256's
// first 8 hex digits); nothing is pinned for the Hub repositories, whose revisions were not found
// stated anywhere public: the Hub's own sha256 of each file is checked instead, and recorded.
export const TRAINING_WEIGHTS: Record<string, TrainingWeight> = {
  vgg16: {
    kind: 'url',
    url: 'https://download.pytorch.org/models/vgg16-397923af.pth',
    file: 'vgg16-397923af.pth',
    sha256: '397923af8e79cdbb6a7127f12361acd7a2f83e06b05044ddf496e83de57a5bf0',
    bytes: 553_433_881,
    slot: 'lpips_vgg',
  },
  'lpips-vgg-v0.1': {
    kind: 'url',
    url: 'https://raw.githubusercontent.com/richzhang/PerceptualSimilarity/master/lpips/weights/v0.1/vgg.pth',
    file: 'lpips_vgg_v0.1-a78928a0.pth',
    sha256: 'a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868',
    bytes: 7_289,
    slot: 'lpips_lin',
  },
  'dinov2-small': { kind: 'hub', repo: 'facebook/dinov2-small', revision: 'main', weights: ['model.safetensors', 'pytorch_model.bin'], slot: 'dino' },
  'clip-vit-base-patch16': {
    kind: 'hub',
    repo: 'openai/clip-vit-base-patch16',
    revision: 'main',
    weights: ['model.safetensors', 'pytorch_model.bin'],
    slot: 'clip',
    variant: 'triple',
  },
  'clip-vit-large-patch14': {
    kind: 'hub',
    repo: 'openai/clip-vit-large-patch14',
    revision: 'main',
    weights: ['model.safetensors', 'pytorch_model.bin'],
    slot: 'clip',
    variant: 'dual',
  },
};

/** `fqtok pull training-weights`: what a Triple model's default fine-tune needs (the Dual's CLIP is `clip-vit-large-patch14`). */
export const TRAINING_SET = ['vgg16', 'lpips-vgg-v0.1', 'dinov2-small', 'clip-vit-base-patch16'];

/**
 * Where a URL weight is fetched from: the official URL, or an override (a mirror) from `overrides`
 * (FQ_VGG16_URL, FQ_LPIPS_VGG_URL). An override may pin what it serves with `#sha256=<hex>`; without
 * one, the official checksum applies.
 */
function source(weight: UrlWeight, override: string | undefined): { url: string; sha256: string; bytes?: number } {
  if (!override) return weight;
  const [url, fragment] = override.split('#');
  const pinned = /^sha256=([0-9a-f]{64})$/.exec(fragment ?? '')?.[1];
  return pinned ? { url: url!, sha256: pinned } : { url: url!, sha256: weight.sha256, bytes: weight.bytes };
}

export interface PulledWeight {
  name: string;
  /** A file, or a Hugging Face model folder (the cache's snapshot). */
  path: string;
  source: string;
  sha256: Record<string, string>;
  revision?: string;
  fetched: number;
}

export async function pullTrainingWeight(
  name: string,
  settings: HubSettings,
  overrides: Record<string, string | undefined>,
  onProgress?: Progress,
  signal?: AbortSignal,
): Promise<PulledWeight> {
  const weight = TRAINING_WEIGHTS[name];
  if (!weight) throw new HubError(`unknown training weights '${name}'; known: ${Object.keys(TRAINING_WEIGHTS).join(', ')}`);
  if (weight.kind === 'url') {
    const from = source(weight, overrides[name]);
    const target = path.join(settings.torchCheckpointsDir, weight.file);
    if (existsSync(target)) {
      const sha256 = await fileSha256(target);
      if (sha256 !== from.sha256) throw new HubError(`${name}: ${target} has sha256 ${sha256}, expected ${from.sha256}; remove it and pull again`);
      return { name, path: target, source: from.url, sha256: { [weight.file]: sha256 }, fetched: 0 };
    }
    if (settings.offline) throw new HubError(`HF_HUB_OFFLINE is set and ${name} is not in torch's cache (${target}); pull it once with network access`);
    const done = await downloadResumable({ url: from.url, target, size: from.bytes, sha256: from.sha256, onProgress, label: name, signal });
    return { name, path: target, source: from.url, sha256: { [weight.file]: done.sha256 }, fetched: done.bytes - done.resumedFrom };
  }
  const config = await fetchHubFile({ repo: weight.repo, path: 'config.json', revision: weight.revision }, settings, undefined, signal);
  let lastError: unknown;
  for (const file of weight.weights) {
    try {
      const got = await fetchHubFile({ repo: weight.repo, path: file, revision: config.commit }, settings, onProgress, signal);
      return {
        name,
        path: path.dirname(got.file), // the snapshot folder: config.json + weights, as from_pretrained reads it
        source: `hf://${weight.repo}@${weight.revision}`,
        revision: config.commit,
        sha256: { 'config.json': config.sha256, [file]: got.sha256 },
        fetched: config.fetched + got.fetched,
      };
    } catch (err) {
      if (!(err instanceof HubError) || !/no such file|not in the Hugging Face cache/.test(err.message)) throw err;
      lastError = err; // the repository keeps its weights under the next name
    }
  }
  throw lastError;
}

/**
 * Where the caches hold the weight for `slot` (nothing fetched, nothing hashed): what a job uses when
 * FQ_WEIGHTS_DIR does not have the file. Undefined when it was never pulled.
 */
export function findCachedWeight(slot: WeightSlot, variant: 'triple' | 'dual', settings: HubSettings): string | undefined {
  const weight = Object.values(TRAINING_WEIGHTS).find((w) => w.slot === slot && (w.kind === 'url' || !w.variant || w.variant === variant));
  if (!weight) return undefined;
  if (weight.kind === 'url') {
    const file = path.join(settings.torchCheckpointsDir, weight.file);
    return existsSync(file) ? file : undefined;
  }
  const storage = path.join(settings.cacheDir, getRepoFolderName({ name: weight.repo, type: 'model' }));
  let commit: string;
  try {
    commit = readFileSync(path.join(storage, 'refs', weight.revision), 'utf8').trim();
  } catch {
    return undefined;
  }
  const snapshot = path.join(storage, 'snapshots', commit);
  const complete = existsSync(path.join(snapshot, 'config.json')) && weight.weights.some((f) => isFile(path.join(snapshot, f)));
  return complete ? snapshot : undefined;
}

const isFile = (file: string) => {
  try {
    return statSync(file).isFile();
  } catch {
    return false;
  }
};
