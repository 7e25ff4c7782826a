// The torch worker's wire format (docs/torch-worker-protocol.md), the service's side, against the recorded
// frames (test/fixtures/torch-worker-frames): ours rewritten byte for byte, the worker's read back.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { encodeFrame, frameTensors, FrameReader, type Frame, type FrameHeader } from '../src/backends/torch/worker-protocol.ts';

const DIR = path.join(import.meta.dirname, 'fixtures', 'torch-worker-frames');

interface TensorSpec {
  name: string;
  dtype: 'float32' | 'int32' | 'uint8';
  shape: number[];
  values: number[];
}
interface FrameSpec {
  file: string;
  writer: 'service' | 'worker';
  header: FrameHeader;
  tensors: TensorSpec[];
}

const { frames } = JSON.parse(readFileSync(path.join(DIR, 'frames.json'), 'utf8')) as { frames: FrameSpec[] };
const bytesOf = (frame: FrameSpec) => readFileSync(path.join(DIR, frame.file));
const ARRAYS = { float32: Float32Array, int32: Int32Array, uint8: Uint8Array };

test('the fixture holds requests of both kinds and every kind of reply', () => {
  const kinds = frames.map((f) => `${f.writer}:${String(f.header.op ?? (f.header.ok ? 'ok' : 'error'))}`);
  assert.deepEqual(kinds.sort(), ['service:decode', 'service:encode', 'worker:error', 'worker:failed', 'worker:ok', 'worker:ok', 'worker:ready'].sort());
});

test("the service writes its request frames byte for byte as recorded", () => {
  for (const frame of frames.filter((f) => f.writer === 'service')) {
    const parts = frame.tensors.map((t) => ARRAYS[t.dtype].from(t.values));
    assert.deepEqual(Buffer.concat(encodeFrame(frame.header, parts)), bytesOf(frame), frame.file);
  }
});

test("the service reads the worker's frames, whole or cut anywhere, with their tensors' values", () => {
  const worker = frames.filter((f) => f.writer === 'worker');
  const stream = Buffer.concat(worker.map(bytesOf));
  for (const cut of [stream.length, 1, 3, 7, 64]) {
    const reader = new FrameReader();
    const read: Frame[] = [];
    for (let at = 0; at < stream.length; at += cut) read.push(...reader.push(stream.subarray(at, at + cut)));
    assert.equal(read.length, worker.length, `cut every ${cut} bytes`);
    read.forEach((got, k) => {
      const want = worker[k]!;
      const { bytes, tensors, ...header } = got.header;
      assert.deepEqual(header, want.header, want.file);
      assert.equal(bytes, got.payload.length);
      assert.deepEqual(tensors ?? [], want.tensors.map(({ name, dtype, shape }) => ({ name, dtype, shape })));
      const values = frameTensors(got);
      for (const t of want.tensors) {
        assert.ok(values[t.name] instanceof ARRAYS[t.dtype], `${want.file}: ${t.name} is ${t.dtype}`);
        assert.deepEqual(Array.from(values[t.name]!), t.values, `${want.file}: ${t.name}`);
      }
    });
  }
});

test('a reader refuses a stream that is out of step (a header over 1 MiB) and a payload its tensors do not fill', () => {
  const length = Buffer.alloc(4);
  length.writeUInt32LE((1 << 20) + 1);
  assert.throws(() => new FrameReader().push(length), /out of step/);
  const [frame] = new FrameReader().push(Buffer.concat(encodeFrame({ id: 1, ok: true, tensors: [{ name: 'x', dtype: 'int32', shape: [2] }] }, [Int32Array.of(1, 2, 3)])));
  assert.throws(() => frameTensors(frame!), /12 payload bytes, its tensors 8/);
});
