// The bulk CLI: `fqtok encode` writes the reference extractor's layout, `fqtok decode` reverses it.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import sharp from 'sharp';
import { writeNpy, writeNpz } from '../src/formats/npz.ts';
import { readSampleArchive } from '../src/formats/sample-archive.ts';
import { makeImage } from './helpers/images.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { ROOT } from './helpers/paths.ts';
import { PYTHON as python } from './helpers/python.ts';

const run = promisify(execFile);

function fqtok(...args: string[]) {
  return run(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/cli.ts'), ...args], {
    cwd: ROOT,
    env: { ...process.env, FQ_LOG_LEVEL: 'silent', FQ_MODELS_DIR: path.join(ROOT, 'models') },
  });
}

let server: TestServer;
let dataset: string;
before(async () => {
  server = await startTestServer();
  dataset = mkdtempSync(path.join(tmpdir(), 'fqtok-cli-'));
  for (const [cls, n] of [['cats', 2], ['dogs', 3]] as const) {
    mkdirSync(path.join(dataset, 'images', cls, 'nested'), { recursive: true });
    for (let i = 0; i < n; i++) writeFileSync(path.join(dataset, 'images', cls, i === 0 ? 'nested' : '', `${i}.jpg`), await makeImage(300 + i * 10, 280, 'jpeg', i));
  }
  writeFileSync(path.join(dataset, 'images', 'dogs', 'broken.png'), 'not an image');
});
after(async () => {
  await server.close();
  rmSync(dataset, { recursive: true, force: true });
});

test('encode a class folder recursively in-process: int64 [1, A, h*w] codes, labels, an index; bad files skipped', async () => {
  const out = path.join(dataset, 'codes');
  const labels = path.join(dataset, 'labels');
  const { stdout, stderr } = await fqtok('encode', path.join(dataset, 'images'), '--out', out, '--labels', labels, '--augment', 'flip');
  assert.deepEqual(JSON.parse(stdout), { encoded: 5, skipped: 1, out });
  assert.match(stderr, /skipped .*broken\.png/);
  const index = readFileSync(path.join(out, 'index.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { index: number; file: string; label: number });
  assert.deepEqual(index.map((e) => e.label), [0, 0, 1, 1, 1]);
  assert.match(index[0]!.file, /cats\/1\.jpg$/);
  const script = `
import numpy as np, json, sys, os
d, l = sys.argv[1], sys.argv[2]
out = {}
for i in range(5):
    for cb in ('vis', 'sem_mid', 'sem_high'):
        a = np.load(os.path.join(d, f'{i}_{cb}.npy'))
        out[f'{i}_{cb}'] = [str(a.dtype), list(a.shape)]
    out[f'label{i}'] = int(np.load(os.path.join(l, f'{i}.npy'))[0])
print(json.dumps(out))`;
  const shapes = JSON.parse((await run(python, ['-c', script, out, labels])).stdout) as Record<string, unknown>;
  assert.deepEqual(shapes['0_vis'], ['int64', [1, 2, 256]]);
  assert.deepEqual(shapes['4_sem_high'], ['int64', [1, 2, 256]]);
  assert.equal(shapes.label4, 1);
});

test('encode against a server gives the same codes as in-process; decode writes one PNG per view', async () => {
  const local = path.join(dataset, 'codes-local');
  const remote = path.join(dataset, 'codes-remote');
  const cats = path.join(dataset, 'images', 'cats');
  await fqtok('encode', cats, '--out', local, '--augment', 'flip');
  await fqtok('encode', cats, '--out', remote, '--augment', 'flip', '--server', server.url);
  for (const f of ['0_vis.npy', '1_sem_mid.npy']) assert.deepEqual(readFileSync(path.join(local, f)), readFileSync(path.join(remote, f)));
  const images = path.join(dataset, 'decoded');
  const { stdout } = await fqtok('decode', local, '--out', images);
  assert.equal(JSON.parse(stdout).decoded, 4); // 2 images x 2 views
  assert.deepEqual(readdirSync(images).sort(), ['0_0.png', '0_1.png', '1_0.png', '1_1.png']);
  const meta = await sharp(path.join(images, '0_1.png')).metadata();
  assert.deepEqual([meta.width, meta.height], [256, 256]);
  const viaServer = path.join(dataset, 'decoded-remote');
  await fqtok('decode', local, '--out', viaServer, '--server', server.url);
  assert.deepEqual(readdirSync(viaServer).sort(), readdirSync(images).sort());
  for (const f of readdirSync(images)) assert.ok(readFileSync(path.join(viaServer, f)).equals(readFileSync(path.join(images, f))), f);
});

/** Every file of a codes folder (npy and index), by name. */
function folderBytes(dir: string): Record<string, Buffer> {
  return Object.fromEntries(readdirSync(dir).sort().map((f) => [f, readFileSync(path.join(dir, f))]));
}

test('encode writes the same files whatever the batch size, in-process and against a server', async () => {
  const images = path.join(dataset, 'images');
  const byBatch: Record<string, Record<string, Buffer>> = {};
  for (const [label, extra] of [['default', []], ['1', ['--batch-size', '1']], ['5', ['--batch-size', '5']], ['server-2', ['--batch-size', '2', '--server', server.url]]] as const) {
    const out = path.join(dataset, `codes-batch-${label}`);
    const { stdout, stderr } = await fqtok('encode', images, '--out', out, '--augment', 'flip', ...extra);
    assert.deepEqual(JSON.parse(stdout), { encoded: 5, skipped: 1, out });
    // On CPU the default batch is one micro-batch (FQ_MAX_BATCH = 8 crops): 4 images with their mirrors.
    const batch = label === 'default' ? '4' : label.replace('server-', '');
    assert.match(stderr, new RegExp(`encoded 5 images in [0-9.]+ s \\([0-9.]+ images/s, batches of ${batch}\\)`));
    byBatch[label] = folderBytes(out);
  }
  assert.equal(Object.keys(byBatch.default!).length, 5 * 3 + 1);
  for (const label of ['1', '5', 'server-2']) assert.deepEqual(byBatch[label], byBatch.default, `batch size ${label}`);
});

describe('decode to an evaluation archive', () => {
  const CODEBOOKS = ['vis', 'sem_mid', 'sem_high'];
  const CELLS = 256;
  const FILES = 3; // extractor files of [1, 2 views, 256]: 6 images
  const N = FILES * 2;
  const tokens = (k: number) => Int32Array.from({ length: N * CELLS }, (_, i) => (i * 7919 + k * 104729) % 16384);
  let dir: string;
  let reference: Uint8Array;

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'fqtok-archive-'));
    mkdirSync(path.join(dir, 'codes'));
    CODEBOOKS.forEach((name, k) => {
      const all = tokens(k);
      for (let i = 0; i < FILES; i++) {
        const data = all.subarray(i * 2 * CELLS, (i + 1) * 2 * CELLS);
        writeFileSync(path.join(dir, 'codes', `${i}_${name}.npy`), writeNpy({ shape: [1, 2, CELLS], data }, 'int64'));
      }
    });
    writeFileSync(path.join(dir, 'sequences.npz'), writeNpz(Object.fromEntries(CODEBOOKS.map((n, k) => [n, { shape: [N, CELLS], data: tokens(k) }]))));
    // The reference: the same tokens as [N, 16, 16] grids, decoded by the server into an archive.
    const grids = writeNpz(Object.fromEntries(CODEBOOKS.map((n, k) => [n, { shape: [N, 16, 16], data: tokens(k) }])));
    const res = await fetch(`${server.url}/decode?format=npz`, { method: 'POST', headers: { 'content-type': 'application/x-npz' }, body: grids as Uint8Array<ArrayBuffer> });
    assert.equal(res.status, 200);
    reference = readSampleArchive(new Uint8Array(await res.arrayBuffer())).rgb;
  });

  test('a folder of extractor codes and an NPZ of [N, h*w] sequences, in-process and via a server, give the grid form\'s pixels; numpy reads uint8 [N, 256, 256, 3]', async () => {
    const runs = [
      ['folder', path.join(dir, 'codes')],
      ['npz', path.join(dir, 'sequences.npz')],
      ['npz-remote', path.join(dir, 'sequences.npz'), '--server', server.url],
    ];
    for (const [name, codes, ...rest] of runs) {
      const out = path.join(dir, `${name}.npz`);
      const { stdout } = await fqtok('decode', codes!, '--out', out, ...rest);
      assert.deepEqual(JSON.parse(stdout), { decoded: N, out });
      assert.ok(!readdirSync(dir).some((f) => f.endsWith('.partial')));
      const archive = readSampleArchive(readFileSync(out));
      assert.deepEqual(archive.shape, [N, 256, 256, 3]);
      assert.ok(Buffer.from(archive.rgb).equals(Buffer.from(reference)), `${name}: pixels differ from the grid form's`);
    }
    const script = `
import json, sys
import numpy as np
a = np.load(sys.argv[1])['arr_0']
print(json.dumps([str(a.dtype), list(a.shape), int(a[3, 100, 7, 2])]))`;
    const [dtype, shape, pixel] = JSON.parse((await run(python, ['-c', script, path.join(dir, 'folder.npz')])).stdout) as [string, number[], number];
    assert.deepEqual([dtype, shape, pixel], ['uint8', [N, 256, 256, 3], reference[((3 * 256 + 100) * 256 + 7) * 3 + 2]]);
    // The same sequences to PNG files: one per image, named by position.
    const pngs = path.join(dir, 'pngs');
    await fqtok('decode', path.join(dir, 'sequences.npz'), '--out', pngs);
    assert.equal(readdirSync(pngs).length, N);
    const raw = await sharp(path.join(pngs, '5.png')).raw().toBuffer();
    assert.ok(raw.equals(Buffer.from(reference.subarray(5 * 196608, 6 * 196608))));
  });

  test('a failure midway leaves neither the archive nor its .partial; a wrong length names 256', async () => {
    const broken = path.join(dir, 'broken');
    mkdirSync(broken);
    for (let i = 0; i < 40; i++) {
      for (const name of CODEBOOKS) {
        const data = new Int32Array(2 * CELLS).fill(i === 39 && name === 'sem_high' ? 99999 : 1);
        writeFileSync(path.join(broken, `${i}_${name}.npy`), writeNpy({ shape: [1, 2, CELLS], data }, 'int64'));
      }
    }
    const out = path.join(dir, 'out', 'broken.npz');
    await assert.rejects(fqtok('decode', broken, '--out', out), (err: { code: number; stderr: string }) => err.code !== 0 && /outside \[0, 16384\)/.test(err.stderr));
    assert.deepEqual(readdirSync(path.dirname(out)), []);
    const wrong = path.join(dir, 'wrong.npz');
    writeFileSync(wrong, writeNpz(Object.fromEntries(CODEBOOKS.map((n) => [n, { shape: [2, 255], data: new Int32Array(510) }]))));
    await assert.rejects(fqtok('decode', wrong, '--out', path.join(dir, 'wrong-out.npz')), (err: { stderr: string }) => /\[2, 255\].*256 tokens per image/.test(err.stderr));
  });
});

test('bad usage exits 2 with a message', async () => {
  await assert.rejects(fqtok('encode', dataset), (err: { code: number; stderr: string }) => err.code === 2 && /--out/.test(err.stderr));
  await assert.rejects(fqtok('encode', dataset, '--out', dataset, '--batch-size', '0'), (err: { code: number; stderr: string }) => err.code === 2 && /--batch-size/.test(err.stderr));
  await assert.rejects(fqtok('bogus'), (err: { code: number; stderr: string }) => err.code === 2 && /unknown command/.test(err.stderr));
});

test('convert makes a checkpoint servable; a missing checkpoint fails with a one-paragraph message', async () => {
  const out = path.join(dataset, 'converted');
  await fqtok('convert', '--checkpoint', path.join(ROOT, 'models/fqgan-triple-vq16-tiny/checkpoint.pt'), '--out', out);
  const manifest = JSON.parse(readFileSync(path.join(out, 'manifest.json'), 'utf8')) as { variant: string; grid: number[]; source: { kind: string; sha256: string } };
  assert.equal(manifest.variant, 'triple');
  assert.deepEqual(manifest.grid, [16, 16]);
  assert.equal(manifest.source.kind, 'checkpoint');
  assert.match(manifest.source.sha256, /^[0-9a-f]{64}$/);
  assert.ok(readdirSync(out).includes('encoder.onnx') && readdirSync(out).includes('decoder.onnx'));
  await assert.rejects(
    fqtok('convert', '--checkpoint', path.join(dataset, 'nope.pt'), '--out', path.join(dataset, 'never')),
    (err: { code: number; stderr: string }) => err.code !== 0 && /does not exist/.test(err.stderr) && !/Traceback/.test(err.stderr),
  );
});
