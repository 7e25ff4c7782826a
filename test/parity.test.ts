// ONNX export parity: onnxruntime-node must reproduce the PyTorch tokens exactly and its decodes within 1e-3.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { exportModel } from './helpers/export-model.ts';

const DECODE_TOLERANCE = 1e-3;
// ORT and PyTorch encoders differ by ~2e-5 on the unit vectors the search compares, so a token
// whose best code beats the runner-up by less than this is a float32 tie: either runtime may pick
// either code. Every token with a wider margin must be identical.
const TIE_MARGIN = 1e-4;

interface TensorEntry {
  file: string;
  dtype: 'float32' | 'int64';
  shape: number[];
}

interface FixtureIndex {
  codebooks: string[];
  masks: Record<string, number[]>;
  tensors: Record<string, TensorEntry>;
}

interface Fixture {
  index: FixtureIndex;
  float32(name: string): Promise<ort.Tensor>;
  int64(name: string): Promise<ort.Tensor>;
}

async function openFixture(dir: string): Promise<Fixture> {
  const index = JSON.parse(await readFile(path.join(dir, 'fixture.json'), 'utf8')) as FixtureIndex;
  const bytes = async (name: string): Promise<{ entry: TensorEntry; buffer: ArrayBuffer }> => {
    const entry = index.tensors[name];
    assert.ok(entry, `fixture has no tensor ${name}`);
    const data = await readFile(path.join(dir, entry.file));
    // Copy into a fresh, aligned ArrayBuffer: typed-array views need 4/8-byte alignment.
    return { entry, buffer: data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength) as ArrayBuffer };
  };
  return {
    index,
    async float32(name) {
      const { entry, buffer } = await bytes(name);
      assert.equal(entry.dtype, 'float32');
      return new ort.Tensor('float32', new Float32Array(buffer), entry.shape);
    },
    async int64(name) {
      const { entry, buffer } = await bytes(name);
      assert.equal(entry.dtype, 'int64');
      return new ort.Tensor('int64', new BigInt64Array(buffer), entry.shape);
    },
  };
}

function maxAbsDiff(a: ort.Tensor, b: ort.Tensor): number {
  assert.deepEqual(a.dims, b.dims);
  const x = a.data as Float32Array;
  const y = b.data as Float32Array;
  let max = 0;
  for (let i = 0; i < x.length; i++) max = Math.max(max, Math.abs(x[i]! - y[i]!));
  return max;
}

/** Tokens that differ, split by whether PyTorch's margin made them a float32 tie. */
function mismatches(got: ort.Tensor, expected: ort.Tensor, margins: ort.Tensor): { decided: number; ties: number } {
  assert.deepEqual(got.dims, expected.dims);
  const x = got.data as BigInt64Array;
  const y = expected.data as BigInt64Array;
  const m = margins.data as Float32Array;
  const result = { decided: 0, ties: 0 };
  for (let i = 0; i < x.length; i++) {
    if (x[i] !== y[i]) m[i]! < TIE_MARGIN ? result.ties++ : result.decided++;
  }
  return result;
}

/** The first item of a batch, as a batch of one. */
function firstItem(t: ort.Tensor): ort.Tensor {
  const per = t.size / t.dims[0]!;
  const data = t.data as Float32Array | BigInt64Array;
  return new ort.Tensor(t.type as 'float32', data.slice(0, per) as Float32Array, [1, ...t.dims.slice(1)]);
}

const scratch: string[] = [];
after(async () => {
  await Promise.all(scratch.map((dir) => rm(dir, { recursive: true, force: true })));
});

for (const { preset, variant, grid } of [
  { preset: 'test-16', variant: 'triple', grid: 16 },
  { preset: 'test-8', variant: 'dual', grid: 32 },
]) {
  describe(`ORT vs PyTorch parity, ${variant} ${preset}`, () => {
    let encoder: ort.InferenceSession;
    let decoder: ort.InferenceSession;
    let fixture: Fixture;

    // Every test below reads what this hook makes, so that each runs alone too.
    before(async () => {
      const root = await mkdtemp(path.join(tmpdir(), 'fqtok-parity-'));
      scratch.push(root);
      const modelDir = path.join(root, 'model');
      const fixtureDir = path.join(root, 'fixture');
      await exportModel(modelDir, { preset, variant: variant as 'triple' | 'dual', seed: 11, fixture: fixtureDir });
      encoder = await ort.InferenceSession.create(path.join(modelDir, 'encoder.onnx'));
      decoder = await ort.InferenceSession.create(path.join(modelDir, 'decoder.onnx'));
      fixture = await openFixture(fixtureDir);
    }, { timeout: 180_000 });

    test('the exported graphs have the manifest\'s input and output names', () => {
      const names = fixture.index.codebooks;
      assert.deepEqual(encoder.inputNames, ['image']);
      assert.deepEqual(encoder.outputNames, names);
      assert.deepEqual(decoder.inputNames, [...names, 'codebook_mask']);
      assert.deepEqual(decoder.outputNames, ['image']);
    });

    test('encoder tokens are identical (apart from float32 ties)', async () => {
      const image = await fixture.float32('input');
      const batch = await encoder.run({ image });
      const single = await encoder.run({ image: firstItem(image) });
      for (const name of fixture.index.codebooks) {
        const expected = await fixture.int64(`tokens_${name}`);
        const margins = await fixture.float32(`margins_${name}`);
        assert.equal(batch[name]!.type, 'int64');
        assert.deepEqual(batch[name]!.dims, [2, grid, grid]);
        const all = mismatches(batch[name]!, expected, margins);
        assert.equal(all.decided, 0, `${name}: ${all.decided} tokens with a clear margin differ from PyTorch`);
        assert.ok(all.ties <= expected.size / 1000, `${name}: ${all.ties} tied tokens differ`);
        const one = mismatches(single[name]!, firstItem(expected), firstItem(margins));
        assert.equal(one.decided, 0, `${name}: a batch of one differs from PyTorch`);
      }
    });

    for (const maskName of ['full', 'partial']) {
      test(`decoder matches PyTorch within ${DECODE_TOLERANCE} (${maskName} mask)`, async () => {
        const mask = fixture.index.masks[maskName]!;
        const feeds: Record<string, ort.Tensor> = {
          codebook_mask: new ort.Tensor('float32', Float32Array.from(mask), [mask.length]),
        };
        for (const name of fixture.index.codebooks) feeds[name] = await fixture.int64(`tokens_${name}`);
        const { image } = await decoder.run(feeds);
        const expected = await fixture.float32(`decoded_${maskName}`);
        const error = maxAbsDiff(image!, expected);
        assert.ok(error <= DECODE_TOLERANCE, `max abs error ${error}`);
      });
    }

    test('decoder accepts other grid sizes', async () => {
      const names = fixture.index.codebooks;
      const feeds: Record<string, ort.Tensor> = {
        codebook_mask: new ort.Tensor('float32', new Float32Array(names.length).fill(1), [names.length]),
      };
      for (const name of names) feeds[name] = new ort.Tensor('int64', new BigInt64Array(3 * 4 * 6).fill(5n), [3, 4, 6]);
      const { image } = await decoder.run(feeds);
      const scale = 256 / grid;
      assert.deepEqual(image!.dims, [3, 3, 4 * scale, 6 * scale]);
    });
  });
}
