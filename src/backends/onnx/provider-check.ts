// Child-process check of one execution provider on one model: makes its encoder and decoder sessions and
// compares their answers on a fixed input with the CPU EP's. Run in a process of its own so that a
// native crash in a provider (Dawn, CUDA libraries) costs this process, not the service.
import * as ort from 'onnxruntime-node';
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import type { Manifest } from '../manifest.ts';

export interface ProviderCheckRequest {
  modelDir: string;
  encoder: Manifest['encoder'];
  decoder: Manifest['decoder'];
  imageSize: number;
  /** The provider as onnxruntime-node takes it (a name, or `{name, ...options}`). */
  provider: string | { name: string; [option: string]: unknown };
  intraOpThreads: number;
}

export interface ProviderCheckResult {
  ok: boolean;
  reason?: string;
  encode: { positions: number; unclear: number; mismatches_clear: number; mismatches_all: number };
  decode: { max_abs: number; mean_abs: number };
}

/** Images in the fixed input (one: software Vulkan in CI takes about a second per image). */
const CHECK_BATCH = 1;
/** Input perturbation (in [-1,1] units) that marks a token's CPU margin as unclear when it flips it. */
const MARGIN_EPSILON = 2e-3;
/** Decoded image, in the decoder's [-1,1] units: 0.01 is 1.3 of 255 levels. */
export const DECODE_MAX_ABS = 0.01;
export const DECODE_MEAN_ABS = 0.001;

/** Deterministic pseudo-random numbers in [0,1) (mulberry32), so every check sees the same input. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Smooth colour fields with texture: closer to photographs than white noise, so codes vary spatially. */
function fixedImages(batch: number, size: number): Float32Array {
  const next = random(1234);
  const out = new Float32Array(batch * 3 * size * size);
  for (let n = 0; n < batch; n++) {
    for (let c = 0; c < 3; c++) {
      const fx = 1 + 5 * next();
      const fy = 1 + 5 * next();
      const phase = 6.28 * next();
      for (let y = 0; y < size; y++) {
        for (let x = 0; x < size; x++) {
          const v = 0.7 * Math.sin((fx * x) / size * 6.28 + phase) * Math.cos((fy * y) / size * 6.28) + 0.3 * (2 * next() - 1);
          out[((n * 3 + c) * size + y) * size + x] = v;
        }
      }
    }
  }
  return out;
}

function perturbed(images: Float32Array, seed: number): Float32Array {
  const next = random(seed);
  return images.map((v) => Math.max(-1, Math.min(1, v + MARGIN_EPSILON * (2 * next() - 1))));
}

async function create(file: string, providers: ProviderCheckRequest['provider'][], threads: number) {
  return ort.InferenceSession.create(file, {
    executionProviders: providers as ort.InferenceSession.ExecutionProviderConfig[],
    graphOptimizationLevel: 'all',
    ...(threads > 0 ? { intraOpNumThreads: threads } : {}),
  });
}

async function encodeTokens(session: ort.InferenceSession, request: ProviderCheckRequest, images: Float32Array) {
  const s = request.imageSize;
  const out = await session.run({ [request.encoder.input]: new ort.Tensor('float32', images, [CHECK_BATCH, 3, s, s]) });
  return request.encoder.outputs.map((name) => out[name]!);
}

export async function checkProvider(request: ProviderCheckRequest): Promise<ProviderCheckResult> {
  const file = (name: string) => `${request.modelDir}/${name}`;
  const threads = request.intraOpThreads;
  const cpuEncoder = await create(file(request.encoder.file), ['cpu'], threads);
  const testedEncoder = await create(file(request.encoder.file), [request.provider, 'cpu'], threads);

  const images = fixedImages(CHECK_BATCH, request.imageSize);
  const reference = await encodeTokens(cpuEncoder, request, images);
  const nearby = [await encodeTokens(cpuEncoder, request, perturbed(images, 1)), await encodeTokens(cpuEncoder, request, perturbed(images, 2))];
  const tested = await encodeTokens(testedEncoder, request, images);
  const encode = { positions: 0, unclear: 0, mismatches_clear: 0, mismatches_all: 0 };
  reference.forEach((ref, k) => {
    const want = ref.data as BigInt64Array;
    const got = tested[k]!.data as BigInt64Array;
    for (let i = 0; i < want.length; i++) {
      const unclear = nearby.some((n) => (n[k]!.data as BigInt64Array)[i] !== want[i]);
      encode.positions++;
      if (unclear) encode.unclear++;
      if (got[i] !== want[i]) {
        encode.mismatches_all++;
        if (!unclear) encode.mismatches_clear++;
      }
    }
  });

  const cpuDecoder = await create(file(request.decoder.file), ['cpu'], threads);
  const testedDecoder = await create(file(request.decoder.file), [request.provider, 'cpu'], threads);
  const feeds: Record<string, ort.Tensor> = {};
  request.decoder.inputs.forEach((name, k) => (feeds[name] = reference[k]!));
  feeds[request.decoder.mask] = new ort.Tensor('float32', new Float32Array(request.decoder.inputs.length).fill(1), [request.decoder.inputs.length]);
  const want = (await cpuDecoder.run(feeds))[request.decoder.output]!.data as Float32Array;
  const got = (await testedDecoder.run(feeds))[request.decoder.output]!.data as Float32Array;
  let maxAbs = 0;
  let sumAbs = 0;
  for (let i = 0; i < want.length; i++) {
    const d = Math.abs(got[i]! - want[i]!);
    if (!(d <= maxAbs)) maxAbs = Number.isNaN(d) ? Infinity : d;
    sumAbs += d;
  }
  const decode = { max_abs: maxAbs, mean_abs: sumAbs / want.length };

  const problems: string[] = [];
  if (encode.mismatches_clear > 0) {
    problems.push(`${encode.mismatches_clear} of ${encode.positions - encode.unclear} tokens with a clear CPU margin differ from the CPU's`);
  }
  if (!(decode.max_abs <= DECODE_MAX_ABS && decode.mean_abs <= DECODE_MEAN_ABS)) {
    problems.push(`decoded image differs from the CPU's by up to ${decode.max_abs.toPrecision(3)} (mean ${decode.mean_abs.toPrecision(3)}; allowed ${DECODE_MAX_ABS}, mean ${DECODE_MEAN_ABS})`);
  }
  return { ok: problems.length === 0, ...(problems.length ? { reason: problems.join('; ') } : {}), encode, decode };
}

// As a child process: the request as JSON on stdin, the result as one JSON line on stdout.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const request = JSON.parse(readFileSync(0, 'utf8')) as ProviderCheckRequest;
  checkProvider(request).then(
    (result) => process.stdout.write(`${JSON.stringify(result)}\n`, () => process.exit(0)),
    (err: Error) => process.stdout.write(`${JSON.stringify({ error: err.message })}\n`, () => process.exit(0)),
  );
}
