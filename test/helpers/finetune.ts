// Fixtures for fine-tuning tests: generated datasets, a few-step CPU recipe, the admin token. (The tiny base
// model: exportModel(dir, { preset: 'test-16' }), about 6 MB, 3 codebooks of 256, its checkpoint named.)
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { makeImage } from './images.ts';

export const ADMIN_TOKEN = 'test-admin-token-0123456789';

export async function makeDataset(dir: string, count: number): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (let i = 0; i < count; i++) await writeFile(path.join(dir, `img-${i}.png`), await makeImage(256, 256, 'png', i));
}

/** A few CPU steps with only the pixel and codebook losses: no LPIPS, teacher or discriminator work. */
export function tinyHyperparameters(steps: number, extra: Record<string, unknown> = {}) {
  return {
    steps,
    batch_size: 2,
    perceptual_weight: 0,
    semantic_weight: 0,
    disc_start: 1_000_000,
    eval_images: 0,
    log_every: 1,
    checkpoint_every: 1,
    ...extra,
  };
}

export const CPU = { device: 'cpu', num_workers: 0 };

export const bearer = (token = ADMIN_TOKEN) => ({ authorization: `Bearer ${token}` });
