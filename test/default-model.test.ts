// The shipped default model: its manifest, and an encode/decode round trip through onnxruntime-node.
import assert from 'node:assert/strict';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';

const MODEL_DIR = fileURLToPath(new URL('../models/fqgan-triple-vq16-tiny/', import.meta.url));
const MAX_MODEL_BYTES = 20 * 1000 * 1000;

interface Manifest {
  variant: string;
  downsample: number;
  image_size: number;
  grid: [number, number];
  codebooks: { name: string; size: number; dim: number }[];
  opset: number;
  encoder: { file: string; input: string; outputs: string[] };
  decoder: { file: string; inputs: string[]; mask: string; output: string };
  checkpoint: string | null;
  config: Record<string, unknown>;
  source: { kind: string; seed: number | null };
}

/** A 320x240 test picture (shapes and a gradient), made by sharp from SVG, as [1,3,256,256] in [-1,1]. */
async function testImage(size: number): Promise<ort.Tensor> {
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="320" height="240">
    <defs><linearGradient id="g"><stop offset="0" stop-color="#1e90ff"/><stop offset="1" stop-color="#ffd700"/></linearGradient></defs>
    <rect width="320" height="240" fill="url(#g)"/>
    <circle cx="110" cy="120" r="70" fill="#c0392b"/>
    <rect x="190" y="40" width="90" height="150" fill="#27ae60"/></svg>`;
  const rgb = await sharp(Buffer.from(svg)).resize(size, size, { fit: 'cover' }).removeAlpha().raw().toBuffer();
  assert.equal(rgb.length, size * size * 3);
  const plane = size * size;
  const data = new Float32Array(3 * plane);
  for (let i = 0; i < plane; i++) {
    for (let c = 0; c < 3; c++) data[c * plane + i] = (rgb[i * 3 + c]! / 255) * 2 - 1;
  }
  return new ort.Tensor('float32', data, [1, 3, size, size]);
}

/** The image mirrored left-right, to make a batch of two different pictures. */
function mirrored(t: ort.Tensor): ort.Tensor {
  const [, channels, height, width] = t.dims as [number, number, number, number];
  const src = t.data as Float32Array;
  const out = new Float32Array(src.length);
  for (let c = 0; c < channels; c++)
    for (let y = 0; y < height; y++)
      for (let x = 0; x < width; x++) {
        const row = (c * height + y) * width;
        out[row + x] = src[row + width - 1 - x]!;
      }
  return new ort.Tensor('float32', out, t.dims);
}

function concatBatch(a: ort.Tensor, b: ort.Tensor): ort.Tensor {
  const data = new Float32Array(a.size + b.size);
  data.set(a.data as Float32Array, 0);
  data.set(b.data as Float32Array, a.size);
  return new ort.Tensor('float32', data, [a.dims[0]! + b.dims[0]!, ...a.dims.slice(1)]);
}

describe('default model fqgan-triple-vq16-tiny', () => {
  let manifest: Manifest;
  let encoder: ort.InferenceSession;
  let decoder: ort.InferenceSession;

  before(async () => {
    manifest = JSON.parse(await readFile(path.join(MODEL_DIR, 'manifest.json'), 'utf8')) as Manifest;
    encoder = await ort.InferenceSession.create(path.join(MODEL_DIR, manifest.encoder.file));
    decoder = await ort.InferenceSession.create(path.join(MODEL_DIR, manifest.decoder.file));
  });

  /** The generated picture and its mirror, encoded: a batch of two different images. */
  async function encodeTestImages(): Promise<Record<string, ort.Tensor>> {
    const image = await testImage(manifest.image_size);
    return encoder.run({ [manifest.encoder.input]: concatBatch(image, mirrored(image)) });
  }

  test('manifest describes a Triple VQ-16 with the released codebook shape', async () => {
    assert.equal(manifest.variant, 'triple');
    assert.equal(manifest.downsample, 16);
    assert.equal(manifest.image_size, 256);
    assert.deepEqual(manifest.grid, [16, 16]);
    assert.deepEqual(manifest.codebooks, ['vis', 'sem_mid', 'sem_high'].map((name) => ({ name, size: 16384, dim: 8 })));
    assert.equal(manifest.opset, 17);
    assert.equal(manifest.source.kind, 'random');
    assert.equal(manifest.checkpoint, 'checkpoint.pt'); // PyTorch weights for fine-tuning live next to the ONNX
    let total = 0;
    for (const file of ['manifest.json', manifest.encoder.file, manifest.decoder.file, manifest.checkpoint!]) {
      total += (await stat(path.join(MODEL_DIR, file))).size;
    }
    assert.ok(total < MAX_MODEL_BYTES, `model dir is ${total} bytes`);
  });

  test('ONNX input and output names follow the manifest', () => {
    assert.deepEqual(encoder.inputNames, [manifest.encoder.input]);
    assert.deepEqual(encoder.outputNames, manifest.encoder.outputs);
    assert.deepEqual(decoder.inputNames, [...manifest.decoder.inputs, manifest.decoder.mask]);
    assert.deepEqual(decoder.outputNames, [manifest.decoder.output]);
  });

  test('encodes a generated image into in-range token grids', async () => {
    const tokens = await encodeTestImages();
    const [h, w] = manifest.grid;
    for (const { name, size } of manifest.codebooks) {
      const grid = tokens[name]!;
      assert.equal(grid.type, 'int64');
      assert.deepEqual(grid.dims, [2, h, w]);
      const values = Array.from(grid.data as BigInt64Array, Number);
      assert.ok(values.every((v) => v >= 0 && v < size), `${name} has an index outside [0, ${size})`);
      assert.ok(new Set(values).size > 1, `${name} is constant`);
    }
  });

  test('decodes the grids back to images; the mask changes the picture', async () => {
    const k = manifest.codebooks.length;
    const tokens = await encodeTestImages();
    const run = async (mask: number[]) => {
      const feeds: Record<string, ort.Tensor> = {
        [manifest.decoder.mask]: new ort.Tensor('float32', Float32Array.from(mask), [k]),
      };
      for (const name of manifest.decoder.inputs) feeds[name] = tokens[name]!;
      return (await decoder.run(feeds))[manifest.decoder.output]!;
    };
    const full = await run(new Array(k).fill(1));
    assert.deepEqual(full.dims, [2, 3, manifest.image_size, manifest.image_size]);
    const pixels = full.data as Float32Array;
    assert.ok(pixels.every(Number.isFinite));
    const partial = await run([1, ...new Array(k - 1).fill(0)]);
    const diff = (partial.data as Float32Array).some((v, i) => Math.abs(v - pixels[i]!) > 1e-6);
    assert.ok(diff, 'zeroing the semantic codebooks left the decode unchanged');
  });
});
