// gpu-check part: onnxruntime-node's WebGPU EP on one exported model: encode and decode images/s per
// batch size for preferredLayout NCHW and NHWC, token agreement and decode difference against the CPU EP.
// Plain JavaScript so that a bare `node` binary runs it (the GPU machine has no tsx); prints one JSON object:
// "measured" counts its figures, "errors" names each layout that failed (e.g. no WebGPU adapter), and a
// figure that would not fit in --budget-s is listed as skipped. Nothing measured exits 1.
//
//   node bench/gpu-check/ort_webgpu.mjs --model-dir DIR [--batches 1,8,32] [--seconds 3] [--check-images 8] [--budget-s 120]
//   ORT_NODE_MODULES=/carry/node_modules   where onnxruntime-node lives (default: the repository's)
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const modules = process.env.ORT_NODE_MODULES ?? path.join(ROOT, 'node_modules');
const ort = createRequire(path.join(modules, 'noop.js'))('onnxruntime-node');

const { values } = parseArgs({
  options: {
    'model-dir': { type: 'string' },
    batches: { type: 'string', default: '1,8,32' },
    seconds: { type: 'string', default: '3' },
    'check-images': { type: 'string', default: '8' },
    layouts: { type: 'string', default: 'NCHW,NHWC' },
    provider: { type: 'string', default: 'webgpu' },
    'budget-s': { type: 'string', default: '120' },
    'min-runs': { type: 'string', default: '2' },
  },
});
const started = performance.now();
const deadline = started + Number(values['budget-s']) * 1000;
const minRuns = Number(values['min-runs']);
let longest = 0; // the slowest figure so far: the next one is skipped unless that much time is left
const timeLeft = () => performance.now() + longest <= deadline;
const modelDir = values['model-dir'];
if (!modelDir) throw new Error('--model-dir is required');
const manifest = JSON.parse(readFileSync(path.join(modelDir, 'manifest.json'), 'utf8'));
const batches = values.batches.split(',').map(Number);
const seconds = Number(values.seconds);
const checkImages = Number(values['check-images']);
const size = manifest.image_size;
const EPSILON = 2e-3; // input perturbation that marks a CPU token as a near-tie (as the service's check)

function random(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function images(count, seed) {
  const next = random(seed);
  const out = new Float32Array(count * 3 * size * size);
  for (let n = 0; n < count; n++) {
    for (let c = 0; c < 3; c++) {
      const [fx, fy, phase] = [1 + 5 * next(), 1 + 5 * next(), 6.28 * next()];
      for (let y = 0; y < size; y++) {
        for (let x = 0; x < size; x++) {
          out[((n * 3 + c) * size + y) * size + x] = 0.7 * Math.sin(((fx * x) / size) * 6.28 + phase) * Math.cos(((fy * y) / size) * 6.28) + 0.3 * (2 * next() - 1);
        }
      }
    }
  }
  return out;
}

const session = (file, provider) =>
  ort.InferenceSession.create(path.join(modelDir, file), { executionProviders: provider === 'cpu' ? ['cpu'] : [provider, 'cpu'], graphOptimizationLevel: 'all' });

/** Encodes images [first, first + count) in one run; one int64 tensor per codebook. */
async function encode(s, data, count, first = 0) {
  const per = 3 * size * size;
  const image = new ort.Tensor('float32', data.subarray(first * per, (first + count) * per), [count, 3, size, size]);
  const out = await s.run({ [manifest.encoder.input]: image });
  return manifest.encoder.outputs.map((name) => out[name].data);
}

/** Decodes grids [first, first + count) of per-codebook token arrays in one run. */
async function decode(s, tokens, count, first = 0) {
  const feeds = {};
  const per = manifest.grid[0] * manifest.grid[1];
  manifest.decoder.inputs.forEach((name, k) => (feeds[name] = new ort.Tensor('int64', tokens[k].subarray(first * per, (first + count) * per), [count, ...manifest.grid])));
  feeds[manifest.decoder.mask] = new ort.Tensor('float32', new Float32Array(manifest.decoder.inputs.length).fill(1), [manifest.decoder.inputs.length]);
  return (await s.run(feeds))[manifest.decoder.output].data;
}

/** One image per run, concatenated: the agreement check does not depend on the largest batch an EP takes. */
async function encodeEach(s, data, count) {
  const parts = [];
  for (let n = 0; n < count; n++) parts.push(await encode(s, data, 1, n));
  return manifest.encoder.outputs.map((_, k) => BigInt64Array.from(parts.flatMap((p) => Array.from(p[k]))));
}

async function decodeEach(s, tokens, count) {
  const parts = [];
  for (let n = 0; n < count; n++) parts.push(await decode(s, tokens, 1, n));
  return Float32Array.from(parts.flatMap((p) => Array.from(p)));
}

const message = (err) => String(err?.message ?? err).slice(0, 500);

async function perSecond(fn, batch) {
  const begun = performance.now();
  await fn(); // warm-up: shader compilation, buffer allocation
  let runs = 0;
  const start = performance.now();
  while (runs < minRuns || performance.now() - start < seconds * 1000) {
    await fn();
    runs++;
  }
  const end = performance.now();
  longest = Math.max(longest, end - begun);
  return Number(((batch * runs * 1000) / (end - start)).toFixed(3));
}

const maxBatch = Math.max(...batches, checkImages);
const input = images(maxBatch, 7);
const cpuEncoder = await session(manifest.encoder.file, 'cpu');
const cpuDecoder = await session(manifest.decoder.file, 'cpu');
const reference = await encode(cpuEncoder, input, checkImages);
const nearby = await encode(cpuEncoder, input.map((v, i) => v + EPSILON * (((i * 2654435761) % 1000) / 500 - 1)), checkImages);
const referenceImages = await decode(cpuDecoder, reference, checkImages);

const result = { part: 'ort_webgpu', provider: values.provider, onnxruntime: ort.env.versions?.common ?? null, image_size: size, batches, seconds_per_figure: seconds, check_images: checkImages, layouts: {}, skipped: [], errors: [], measured: 0 };
for (const layout of values.layouts.split(',')) {
  if (!timeLeft()) {
    result.skipped.push(`${layout} (time budget)`);
    continue;
  }
  const provider = values.provider === 'cpu' ? 'cpu' : { name: values.provider, preferredLayout: layout };
  const entry = { encode_images_per_s: {}, decode_images_per_s: {} };
  result.layouts[layout] = entry;
  const fail = (what, err) => {
    entry.errors = [...(entry.errors ?? []), `${what}: ${message(err)}`];
    result.errors.push(`${layout} ${what}: ${message(err)}`);
  };
  let encoder, decoder;
  try {
    const started = performance.now();
    encoder = await session(manifest.encoder.file, provider);
    decoder = await session(manifest.decoder.file, provider); // one after the other: see execution-providers.ts
    entry.session_create_s = Number(((performance.now() - started) / 1000).toFixed(2));
  } catch (err) {
    fail('session', err);
    continue;
  }
  try {
    const tokens = await encodeEach(encoder, input, checkImages);
    let same = 0, total = 0, clearSame = 0, clearTotal = 0;
    reference.forEach((want, k) => {
      for (let i = 0; i < want.length; i++) {
        const agree = tokens[k][i] === want[i];
        const clear = nearby[k][i] === want[i];
        total++; same += agree ? 1 : 0;
        if (clear) { clearTotal++; clearSame += agree ? 1 : 0; }
      }
    });
    entry.token_agreement_with_cpu = Number((same / total).toFixed(6));
    entry.token_agreement_with_cpu_clear = Number((clearSame / Math.max(clearTotal, 1)).toFixed(6));
    entry.tokens_compared = total;
    const decoded = await decodeEach(decoder, reference, checkImages);
    let maxAbs = 0;
    for (let i = 0; i < decoded.length; i++) maxAbs = Math.max(maxAbs, Math.abs(decoded[i] - referenceImages[i]));
    entry.decode_max_abs_vs_cpu = Number(maxAbs.toPrecision(4));
    result.measured += 2; // the agreement and the decode difference
  } catch (err) {
    fail('check', err);
  }
  // Each batch size on its own: one the EP cannot take (e.g. a buffer over its limits) leaves the others.
  for (const batch of batches) {
    if (!timeLeft()) {
      result.skipped.push(`${layout} batch ${batch} (time budget)`);
      continue;
    }
    try {
      entry.encode_images_per_s[batch] = await perSecond(() => encode(encoder, input, batch), batch);
      result.measured += 1;
      const codes = await encode(encoder, input, batch);
      entry.decode_images_per_s[batch] = await perSecond(() => decode(decoder, codes, batch), batch);
      result.measured += 1;
    } catch (err) {
      fail(`batch ${batch}`, err);
    }
  }
  await encoder.release();
  await decoder.release();
}
result.seconds = Number(((performance.now() - started) / 1000).toFixed(1));
process.stdout.write(`${JSON.stringify(result)}\n`);
process.exitCode = result.measured > 0 ? 0 : 1;
