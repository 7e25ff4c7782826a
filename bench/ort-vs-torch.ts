// Benchmark: onnxruntime-node vs PyTorch (CPU) encode/decode throughput of one exported model, plus
// token agreement and decode error between the two on generated images. Prints one JSON object.
//
//   node --import tsx bench/ort-vs-torch.ts [--model-dir DIR] [--threads 2] [--images 8] [--repeats 2]
//
// Without --model-dir it exports a seeded random default-size Triple VQ-16 (~530 MB) to
// $TMPDIR/fqtok-bench-vq16-triple once and reuses it. Both runtimes get the same thread count and
// run in the same invocation, so the ratios hold on a busy machine even when absolute numbers do not.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import { DEFAULT_PYTHON } from '../src/config.ts';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const PYTHON = process.env.FQ_PYTHON || DEFAULT_PYTHON;
const TIE_MARGIN = 1e-4; // see test/parity.test.ts

const { values } = parseArgs({
  options: {
    'model-dir': { type: 'string' },
    threads: { type: 'string', default: '2' },
    images: { type: 'string', default: '8' },
    repeats: { type: 'string', default: '2' },
  },
});
const threads = Number(values.threads);
const repeats = Number(values.repeats);
const BATCHES = [1, 4];

interface TensorEntry {
  file: string;
  dtype: 'float32' | 'int64';
  shape: number[];
}

interface TorchResult {
  threads: number;
  torch: string;
  encode: Record<string, number>;
  decode: Record<string, number>;
}

function run(command: string, args: string[], cwd: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(stdout) : reject(new Error(`${command} ${args.join(' ')} exited ${code}`))));
  });
}

async function defaultModelDir(): Promise<string> {
  const dir = path.join(tmpdir(), 'fqtok-bench-vq16-triple');
  if (!existsSync(path.join(dir, 'manifest.json'))) {
    console.error(`[bench] exporting a random default-size Triple VQ-16 to ${dir}`);
    await run(PYTHON, ['-m', 'fqgan.export', '--random', '--preset', 'VQ-16', '--seed', '0', '--out', dir], path.join(ROOT, 'trainer'));
  }
  return dir;
}

async function readTensor(dir: string, entry: TensorEntry): Promise<ort.Tensor> {
  const bytes = await readFile(path.join(dir, entry.file));
  const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  return entry.dtype === 'int64'
    ? new ort.Tensor('int64', new BigInt64Array(buffer), entry.shape)
    : new ort.Tensor('float32', new Float32Array(buffer), entry.shape);
}

/** Items [start, start+count) of a batch tensor. */
function slice(t: ort.Tensor, start: number, count: number): ort.Tensor {
  const per = t.size / t.dims[0]!;
  const data = (t.data as Float32Array).subarray(start * per, (start + count) * per);
  return new ort.Tensor(t.type as 'float32', data.slice(), [count, ...t.dims.slice(1)]);
}

async function throughput(fn: () => Promise<unknown>, batch: number): Promise<number> {
  await fn(); // warm-up
  const start = performance.now();
  for (let i = 0; i < repeats; i++) await fn();
  return Math.round(((batch * repeats) / ((performance.now() - start) / 1000)) * 1000) / 1000;
}

const modelDir = values['model-dir'] ?? (await defaultModelDir());
const manifest = JSON.parse(await readFile(path.join(modelDir, 'manifest.json'), 'utf8')) as {
  preset: string | null;
  variant: string;
  codebooks: { name: string }[];
};
const names = manifest.codebooks.map((c) => c.name);
const parityDir = await mkdtemp(path.join(tmpdir(), 'fqtok-bench-parity-'));

try {
  console.error('[bench] PyTorch: reference outputs and throughput');
  const torchOut = await run(
    PYTHON,
    ['bench/torch_throughput.py', '--model-dir', modelDir, '--out', parityDir, '--threads', String(threads), '--images', values.images!, '--repeats', String(repeats)],
    ROOT,
  );
  const torchResult = JSON.parse(torchOut) as TorchResult;

  const options: ort.InferenceSession.SessionOptions = {
    graphOptimizationLevel: 'all',
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
  };
  const encoder = await ort.InferenceSession.create(path.join(modelDir, 'encoder.onnx'), options);
  const decoder = await ort.InferenceSession.create(path.join(modelDir, 'decoder.onnx'), options);
  const index = JSON.parse(await readFile(path.join(parityDir, 'parity.json'), 'utf8')) as { tensors: Record<string, TensorEntry> };
  const images = await readTensor(parityDir, index.tensors.input!);
  const count = images.dims[0]!;
  const mask = new ort.Tensor('float32', new Float32Array(names.length).fill(1), [names.length]);

  // Parity: ORT tokens vs PyTorch tokens; ORT decode of PyTorch's tokens vs PyTorch's decode.
  let total = 0;
  let differing = 0;
  let differingClear = 0;
  let decodeError = 0;
  const perCodebook: Record<string, number> = {};
  for (const name of names) {
    const expected = (await readTensor(parityDir, index.tensors[`tokens_${name}`]!)).data as BigInt64Array;
    const margins = (await readTensor(parityDir, index.tensors[`margins_${name}`]!)).data as Float32Array;
    let offset = 0;
    let same = 0;
    for (let start = 0; start < count; start += 4) {
      const n = Math.min(4, count - start);
      const got = (await encoder.run({ image: slice(images, start, n) }))[name]!.data as BigInt64Array;
      for (let i = 0; i < got.length; i++, offset++) {
        if (got[i] === expected[offset]) same++;
        else if (margins[offset]! >= TIE_MARGIN) differingClear++;
      }
    }
    total += expected.length;
    differing += expected.length - same;
    perCodebook[name] = Math.round((same / expected.length) * 1e6) / 1e4;
  }
  const expectedImage = (await readTensor(parityDir, index.tensors.decoded!)).data as Float32Array;
  const tokenTensors: Record<string, ort.Tensor> = {};
  for (const name of names) tokenTensors[name] = await readTensor(parityDir, index.tensors[`tokens_${name}`]!);
  for (let start = 0; start < count; start += 4) {
    const n = Math.min(4, count - start);
    const feeds: Record<string, ort.Tensor> = { codebook_mask: mask };
    for (const name of names) feeds[name] = slice(tokenTensors[name]!, start, n);
    const out = (await decoder.run(feeds)).image!.data as Float32Array;
    const base = start * (out.length / n);
    for (let i = 0; i < out.length; i++) decodeError = Math.max(decodeError, Math.abs(out[i]! - expectedImage[base + i]!));
  }

  // Throughput at each batch size, on the same images and tokens PyTorch used.
  const ortResult = { encode: {} as Record<string, number>, decode: {} as Record<string, number> };
  for (const batch of BATCHES) {
    const x = slice(images, 0, batch);
    const feeds: Record<string, ort.Tensor> = { codebook_mask: mask };
    for (const name of names) feeds[name] = slice(tokenTensors[name]!, 0, batch);
    ortResult.encode[batch] = await throughput(() => encoder.run({ image: x }), batch);
    ortResult.decode[batch] = await throughput(() => decoder.run(feeds), batch);
    console.error(`[ort] batch ${batch}: encode ${ortResult.encode[batch]} img/s, decode ${ortResult.decode[batch]} img/s`);
  }
  const ratio: Record<string, number> = {};
  for (const op of ['encode', 'decode'] as const) {
    for (const batch of BATCHES) ratio[`${op}_b${batch}`] = Math.round((ortResult[op][batch]! / torchResult[op][batch]!) * 100) / 100;
  }

  console.log(JSON.stringify({
    model: { dir: modelDir, variant: manifest.variant, preset: manifest.preset },
    threads,
    images: count,
    repeats,
    unit: 'images/s',
    torch: torchResult,
    ort: { version: ort.env.versions.common, ...ortResult },
    ratio_ort_over_torch: ratio,
    parity: {
      tokens: total,
      agreement_percent: Math.round((1 - differing / total) * 1e6) / 1e4,
      agreement_percent_by_codebook: perCodebook,
      differing_tokens: differing,
      differing_with_clear_margin: differingClear,
      decode_max_abs_error: decodeError,
    },
  }));
} finally {
  await rm(parityDir, { recursive: true, force: true });
}
