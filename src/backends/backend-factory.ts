// The one place that decides which backend runs a model version (FQ_BACKEND) and makes it.
import { execFile } from 'node:child_process';
import { access } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import type { BackendName } from '../config.ts';
import { logger } from '../logger.ts';
import type { InferenceBackend } from './backend.ts';
import type { Manifest } from './manifest.ts';
import { OnnxBackend, type OnnxBackendOptions } from './onnx/onnx-backend.ts';
import { TorchBackend, type TorchBackendOptions } from './torch/torch-backend.ts';

export interface BackendOptions extends OnnxBackendOptions, TorchBackendOptions {
  backend: BackendName;
}

/**
 * Near-ties: a token whose best code beats the runner-up by less than this (fp32 score) may flip
 * between runtimes (see test/parity.test.ts). Reduced precision moves the encoder's vectors more,
 * so there a small share of decided tokens may differ too (the bar: 99% agreement).
 */
const TIE_MARGIN = 1e-4;
const REDUCED_PRECISION_MAX_DISAGREEMENT = 0.01;

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

/** Start-up check: the worker's tokens for its fixed input against onnxruntime on the CPU. */
async function checkAgainstOnnx(torch: TorchBackend, modelDir: string, manifest: Manifest, label: string, options: BackendOptions): Promise<void> {
  const encoderFile = path.join(modelDir, manifest.encoder.file);
  if (!(await access(encoderFile).then(() => true, () => false))) {
    logger.warn({ model: label }, 'no encoder.onnx: the torch worker is not checked against onnxruntime');
    return;
  }
  const answer = await torch.check();
  const input = answer.input as Float32Array;
  const count = input.length / (3 * manifest.image_size * manifest.image_size);
  const onnx = await OnnxBackend.load(modelDir, manifest, { ...options, executionProviders: ['cpu'] }, `${label} (start-up check)`);
  let reference;
  try {
    reference = await onnx.encode(input, count);
  } finally {
    await onnx.close();
  }
  const precision = torch.info.precision;
  const results = manifest.codebooks.map(({ name }) => {
    const got = answer[name] as Int32Array;
    const want = reference[name]!;
    const margins = answer[`margin_${name}`] as Float32Array;
    let decided = 0;
    let ties = 0;
    for (let i = 0; i < want.length; i++) if (got[i] !== want[i]) (margins[i]! < TIE_MARGIN ? ties++ : decided++);
    return { codebook: name, tokens: want.length, differ: decided + ties, decided, ties };
  });
  const allowed = (n: number) => (precision === 'fp32' ? 0 : Math.floor(n * REDUCED_PRECISION_MAX_DISAGREEMENT));
  const failed = results.filter((r) => r.decided > allowed(r.tokens));
  const numbers = { model: label, precision, tieMargin: TIE_MARGIN, codebooks: results };
  if (failed.length > 0) {
    logger.error(numbers, 'torch worker disagrees with onnxruntime beyond near-ties; refusing the torch backend');
    const summary = failed.map((r) => `${r.codebook}: ${r.decided} of ${r.tokens} decided tokens differ`).join('; ');
    throw new Error(`torch backend for ${label} refused: its tokens differ from onnxruntime's (${summary})`);
  }
  logger.info(numbers, 'torch worker agrees with onnxruntime');
}
