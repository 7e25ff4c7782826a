// Benchmark: the service's torch backend vs its onnx backend on this machine's CPU, through the
// backend interface the batcher calls (worker pipe and all): encode and decode images/s at batch 1
// and 8. Prints one JSON object.
//
//   node --import tsx bench/torch-vs-onnx-backend.ts [--model-dir models/fqgan-triple-vq16-tiny] [--threads 2] [--seconds 3]
//
// Both backends run in the same invocation with the same thread count, one after the other, so
// their ratio holds on a busy machine even when the absolute numbers do not.
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { InferenceBackend } from '../src/backends/backend.ts';
import { createBackend } from '../src/backends/backend-factory.ts';
import { readManifest } from '../src/backends/manifest.ts';
import { DEFAULT_PYTHON } from '../src/config.ts';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const { values } = parseArgs({
  options: {
    'model-dir': { type: 'string', default: path.join(ROOT, 'models', 'fqgan-triple-vq16-tiny') },
    threads: { type: 'string', default: '2' },
    seconds: { type: 'string', default: '3' },
  },
});
const modelDir = path.resolve(values['model-dir']);
const threads = Number(values.threads);
const seconds = Number(values.seconds);
const manifest = await readManifest(modelDir);
const size = manifest.image_size;
const [gh, gw] = manifest.grid;

function images(batch: number): Float32Array {
  const out = new Float32Array(batch * 3 * size * size);
  for (let i = 0; i < out.length; i++) out[i] = Math.sin(i * 0.0137) * 0.9;
  return out;
}

/** Runs `fn` once to warm up, then for `seconds` (at least twice); returns images per second. */
async function rate(batch: number, fn: () => Promise<unknown>): Promise<number> {
  await fn();
  let runs = 0;
  const start = performance.now();
  while (runs < 2 || performance.now() - start < seconds * 1000) {
    await fn();
    runs++;
  }
  return (runs * batch) / ((performance.now() - start) / 1000);
}

async function measure(backend: InferenceBackend) {
  const result: Record<string, number> = {};
  for (const batch of [1, 8]) {
    const input = images(batch);
    const tokens = await backend.encode(input, batch);
    result[`encode_b${batch}`] = await rate(batch, () => backend.encode(input, batch));
    const mask = new Float32Array(manifest.codebooks.length).fill(1);
    result[`decode_b${batch}`] = await rate(batch, () => backend.decode(tokens, batch, [gh, gw], mask));
  }
  return result;
}

const options = {
  executionProviders: ['cpu' as const],
  intraOpThreads: threads,
  cudaDeviceId: 0,
  python: process.env.FQ_PYTHON || DEFAULT_PYTHON,
  precision: 'fp32',
  torchCompile: false,
  requestTimeoutMs: 600_000,
};
const results: Record<string, Record<string, number>> = {};
for (const name of ['onnx', 'torch'] as const) {
  const backend = await createBackend(modelDir, manifest, `bench-${name}`, { ...options, backend: name });
  try {
    results[name] = await measure(backend);
  } finally {
    await backend.close();
  }
}
const round = (x: number) => Math.round(x * 100) / 100;
const ratio: Record<string, number> = {};
for (const key of Object.keys(results.onnx!)) ratio[key] = round(results.torch![key]! / results.onnx![key]!);
console.log(
  JSON.stringify(
    {
      bench: 'torch-vs-onnx-backend',
      model: path.basename(modelDir),
      threads,
      cpus: os.cpus().length,
      cpu: os.cpus()[0]?.model,
      images_per_second: Object.fromEntries(Object.entries(results).map(([k, v]) => [k, Object.fromEntries(Object.entries(v).map(([m, x]) => [m, round(x)]))])),
      torch_over_onnx: ratio,
    },
    null,
    2,
  ),
);
