// The one place that decides which backend runs a model version (FQ_BACKEND) and makes it.
import { execFile } from 'node:child_process';
import { access } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import type { BackendName } from '../config.ts';
import { logger } from '../logger.ts';
import type { InferenceBackend, TokenBatch } from './backend.ts';
import type { Manifest } from './manifest.ts';
import { OnnxBackend, type OnnxBackendOptions } from './onnx/onnx-backend.ts';
import { TorchBackend, type TorchBackendOptions } from './torch/torch-backend.ts';
import { checkImages, compareTokens, nearbyInputs, tokenDisagreements } from './token-agreement.ts';

export interface BackendOptions extends OnnxBackendOptions, TorchBackendOptions {
  backend: BackendName;
}

/**
 * At fp32 every clear token (see token-agreement.ts) must be the same; reduced precision moves the
 * encoder's vectors more, so there a small share of clear tokens may differ too (99% agreement).
 */
const REDUCED_PRECISION_MAX_DISAGREEMENT = 0.01;
/** Images of the fixed input the worker is checked with. */
const CHECK_IMAGES = 1;

let cudaProbe: Promise<boolean> | undefined;

/** Whether FQ_PYTHON's torch sees a CUDA device (asked once per process). */
export function pythonSeesCuda(python: string): Promise<boolean> {
  cudaProbe ??= promisify(execFile)(python, ['-c', 'import torch; print(int(torch.cuda.is_available()))'], { timeout: 120_000 }).then(
    ({ stdout }) => stdout.trim() === '1',
    (err: Error) => {
      logger.info({ python, reason: err.message.split('\n')[0] }, 'no usable torch for the torch backend');
      return false;
    },
  );
  return cudaProbe;
}

export async function createBackend(modelDir: string, manifest: Manifest, label: string, options: BackendOptions): Promise<InferenceBackend> {
  const choice = options.backend === 'auto' ? ((await pythonSeesCuda(options.python)) ? 'torch' : 'onnx') : options.backend;
  if (choice === 'onnx') return OnnxBackend.load(modelDir, manifest, options, label);
  try {
    const torch = await TorchBackend.start(modelDir, manifest, label, options);
    try {
      await checkAgainstOnnx(torch, modelDir, manifest, label, options);
    } catch (err) {
      await torch.close();
      throw err;
    }
    return torch;
  } catch (err) {
    if (options.backend !== 'auto') throw err;
    logger.error({ model: label, err: (err as Error).message }, 'torch backend refused; serving this version with onnx');
    return OnnxBackend.load(modelDir, manifest, options, label);
  }
}

/** Start-up check: the worker's tokens for the fixed input against onnxruntime on the CPU, near-ties set apart. */
async function checkAgainstOnnx(torch: TorchBackend, modelDir: string, manifest: Manifest, label: string, options: BackendOptions): Promise<void> {
  const encoderFile = path.join(modelDir, manifest.encoder.file);
  if (!(await access(encoderFile).then(() => true, () => false))) {
    logger.warn({ model: label }, 'no encoder.onnx: the torch worker is not checked against onnxruntime');
    return;
  }
  const images = checkImages(CHECK_IMAGES, manifest.image_size);
  const onnx = await OnnxBackend.load(modelDir, manifest, { ...options, executionProviders: ['cpu'] }, `${label} (start-up check)`);
  let reference: TokenBatch;
  const nearby: TokenBatch[] = [];
  try {
    reference = await onnx.encode(images, CHECK_IMAGES);
    for (const moved of nearbyInputs(images)) nearby.push(await onnx.encode(moved, CHECK_IMAGES));
  } finally {
    await onnx.close();
  }
  const tested = await torch.encode(images, CHECK_IMAGES);
  const precision = torch.info.precision;
  const codebooks = compareTokens(manifest.codebooks.map((c) => c.name), reference, nearby, tested);
  const problems = tokenDisagreements(codebooks, precision === 'fp32' ? 0 : REDUCED_PRECISION_MAX_DISAGREEMENT);
  const numbers = { model: label, precision, codebooks };
  if (problems.length > 0) {
    logger.error(numbers, 'torch worker disagrees with onnxruntime beyond near-ties; refusing the torch backend');
    throw new Error(`torch backend for ${label} refused: its tokens differ from onnxruntime's (${problems.join('; ')})`);
  }
  logger.info(numbers, 'torch worker agrees with onnxruntime');
}
