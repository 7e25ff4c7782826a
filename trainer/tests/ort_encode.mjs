// Test helper for the Python suite: runs an exported encoder.onnx in onnxruntime-node (the runtime the
// service serves with) on a fixture's input, and prints {codebook: flat int tokens} as one JSON line.
//   node ort_encode.mjs MODEL_DIR FIXTURE_DIR
import { readFileSync } from 'node:fs';
import path from 'node:path';
import * as ort from 'onnxruntime-node';

const [modelDir, fixtureDir] = process.argv.slice(2);
const index = JSON.parse(readFileSync(path.join(fixtureDir, 'fixture.json'), 'utf8'));
const input = index.tensors.input;
const bytes = readFileSync(path.join(fixtureDir, input.file));
const image = new ort.Tensor('float32', new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4), input.shape);
const session = await ort.InferenceSession.create(path.join(modelDir, 'encoder.onnx'), { executionProviders: ['cpu'] });
const out = await session.run({ image });
const tokens = Object.fromEntries(index.codebooks.map((name) => [name, Array.from(out[name].data, Number)]));
process.stdout.write(`${JSON.stringify(tokens)}\n`);
