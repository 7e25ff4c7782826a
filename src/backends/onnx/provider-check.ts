// Child-process check of one execution provider on one model: makes its encoder and decoder sessions and
// compares their answers on a fixed input with the CPU EP's. Run in a process of its own so that a
// native crash in a provider (Dawn, CUDA libraries) costs this process, not the service.
import * as ort from 'onnxruntime-node';
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import type { Manifest } from '../manifest.ts';
import { checkImages, compareTokens, nearbyInputs, tokenDisagreements, type CodebookAgreement } from '../token-agreement.ts';

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
  encode: CodebookAgreement[];
  decode: { max_abs: number; mean_abs: number };
}

/** Images in the fixed input (one: software Vulkan in CI takes about a second per image). */
const CHECK_BATCH = 1;
/** Decoded image, in the decoder's [-1,1] units: 0.01 is 1.3 of 255 levels. */
export const DECODE_MAX_ABS = 0.01;
export const DECODE_MEAN_ABS = 0.001;

async function create(file: string, providers: ProviderCheckRequest['provider'][], threads: number) {
  return ort.InferenceSession.create(file, {
    executionProviders: providers as ort.InferenceSession.ExecutionProviderConfig[],
    graphOptimizationLevel: 'all',
    ...(threads > 0 ? { intraOpNumThreads: threads } : {}),
  });
}

async function encodeTokens(session: ort.InferenceSession, request: ProviderCheckRequest, images: Float32Array): Promise<Record<string, ort.Tensor>> {
  const s = request.imageSize;
  const out = await session.run({ [request.encoder.input]: new ort.Tensor('float32', images, [CHECK_BATCH, 3, s, s]) });
  return Object.fromEntries(request.encoder.outputs.map((name) => [name, out[name]!]));
}

const grids = (tensors: Record<string, ort.Tensor>) => Object.fromEntries(Object.entries(tensors).map(([name, t]) => [name, t.data as BigInt64Array]));

export async function checkProvider(request: ProviderCheckRequest): Promise<ProviderCheckResult> {
  const file = (name: string) => `${request.modelDir}/${name}`;
  const threads = request.intraOpThreads;
  const cpuEncoder = await create(file(request.encoder.file), ['cpu'], threads);
  const testedEncoder = await create(file(request.encoder.file), [request.provider, 'cpu'], threads);

  const images = checkImages(CHECK_BATCH, request.imageSize);
  const reference = await encodeTokens(cpuEncoder, request, images);
  const nearby: Record<string, ort.Tensor>[] = [];
  for (const moved of nearbyInputs(images)) nearby.push(await encodeTokens(cpuEncoder, request, moved));
  const tested = await encodeTokens(testedEncoder, request, images);
  const encode = compareTokens(request.encoder.outputs, grids(reference), nearby.map(grids), grids(tested));

  const cpuDecoder = await create(file(request.decoder.file), ['cpu'], threads);
  const testedDecoder = await create(file(request.decoder.file), [request.provider, 'cpu'], threads);
  const feeds: Record<string, ort.Tensor> = {};
  request.decoder.inputs.forEach((name) => (feeds[name] = reference[name]!));
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

  const problems = tokenDisagreements(encode, 0); // the EPs run fp32: every clear token must be the CPU's
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
