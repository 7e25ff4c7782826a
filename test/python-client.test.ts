// The Python examples (urllib + numpy) against a live server: the README's round trip, and the AR-sampler client.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, test } from 'node:test';
import sharp from 'sharp';
import { readNpz, writeNpz } from '../src/formats/npz.ts';
import { readSampleArchive } from '../src/formats/sample-archive.ts';
import { makeImage } from './helpers/images.ts';
import { PYTHON } from './helpers/python.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { ROOT } from './helpers/paths.ts';

let server: TestServer;
before(async () => {
  server = await startTestServer();
});
after(() => server.close());

test('examples/client.py encodes to NPZ with numpy and decodes back to a PNG', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'fqtok-client-'));
  writeFileSync(path.join(dir, 'in.jpg'), await makeImage(333, 250, 'jpeg'));
  const { stdout } = await promisify(execFile)(PYTHON, [
    path.join(ROOT, 'examples/client.py'),
    server.url,
    path.join(dir, 'in.jpg'),
    path.join(dir, 'out.png'),
  ]);
  const shapes = JSON.parse(stdout) as Record<string, number[]>;
  assert.deepEqual(Object.keys(shapes).sort(), ['sem_high', 'sem_mid', 'vis']);
  assert.deepEqual(shapes.vis!.slice(0, 2), [1, 1]);
  const meta = await sharp(path.join(dir, 'out.png')).metadata();
  assert.deepEqual([meta.format, meta.width, meta.height], ['png', 256, 256]);
});

test('examples/generator_client.py turns [B, h*w] index tensors into an evaluation archive and PNGs equal to the grid form', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'fqtok-generator-'));
  const { stdout } = await promisify(execFile)(PYTHON, [
    path.join(ROOT, 'examples/generator_client.py'),
    server.url,
    ...['--batches', '2', '--batch-size', '3', '--seed', '7'],
    ...['--out', path.join(dir, 'samples.npz'), '--out-dir', path.join(dir, 'pngs'), '--save-indices', path.join(dir, 'indices.npz')],
  ]);
  assert.equal(JSON.parse(stdout).samples, 6);
  // numpy reads the example's archive: exact dtype and shape.
  const script = `import json, sys, hashlib
import numpy as np
a = np.load(sys.argv[1])['arr_0']
print(json.dumps([str(a.dtype), list(a.shape), hashlib.sha256(a.tobytes()).hexdigest()]))`;
  const [dtype, shape, sha] = JSON.parse((await promisify(execFile)(PYTHON, ['-c', script, path.join(dir, 'samples.npz')])).stdout) as [string, number[], string];
  assert.deepEqual([dtype, shape], ['uint8', [6, 256, 256, 3]]);
  // The same indices as [N, 16, 16] grids, decoded by the server, give the very same pixels.
  const indices = await readNpz(readFileSync(path.join(dir, 'indices.npz')), { maxBytes: 1 << 30 });
  assert.deepEqual(indices.vis!.shape, [6, 256]);
  const grids = writeNpz(Object.fromEntries(Object.entries(indices).map(([n, a]) => [n, { shape: [6, 16, 16], data: a.data }])));
  const res = await fetch(`${server.url}/decode?format=npz`, { method: 'POST', headers: { 'content-type': 'application/x-npz' }, body: grids as Uint8Array<ArrayBuffer> });
  const reference = readSampleArchive(new Uint8Array(await res.arrayBuffer())).rgb;
  assert.equal(createHash('sha256').update(reference).digest('hex'), sha);
  const png = await sharp(path.join(dir, 'pngs', '000004.png')).raw().toBuffer();
  assert.ok(png.equals(Buffer.from(reference.subarray(4 * 196608, 5 * 196608))));
});
