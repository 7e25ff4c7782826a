// Fixtures for fine-tuning tests: a tiny base model with a checkpoint, generated datasets, a few-step CPU recipe.
import { execFile } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { makeImage } from './images.ts';
import { ROOT } from './server.ts';

export const PYTHON = process.env.FQ_PYTHON ?? '/usr/bin/python3';
export const ADMIN_TOKEN = 'test-admin-token-0123456789';

/** A random-init `test-16` model (about 6 MB, 3 codebooks of 256) whose manifest names its checkpoint. */
export async function exportTinyModel(out: string): Promise<void> {
  await promisify(execFile)(PYTHON, ['-m', 'fqgan.export', '--random', '--preset', 'test-16', '--seed', '0', '--out', out], {
    cwd: path.join(ROOT, 'trainer'),
  });
}

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

export async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 120_000, everyMs = 250): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
