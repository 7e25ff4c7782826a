// The bulk CLI: `fqtok encode` writes the reference extractor's layout, `fqtok decode` reverses it.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, test } from 'node:test';
import sharp from 'sharp';
import { makeImage } from './helpers/images.ts';
import { ROOT, startTestServer, type TestServer } from './helpers/server.ts';

const run = promisify(execFile);
const python = process.env.FQ_PYTHON ?? '/usr/bin/python3';

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
after(() => server.close());

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
  await fqtok('encode', cats, '--out', local);
  await fqtok('encode', cats, '--out', remote, '--server', server.url);
  for (const f of ['0_vis.npy', '1_sem_mid.npy']) assert.deepEqual(readFileSync(path.join(local, f)), readFileSync(path.join(remote, f)));
  const images = path.join(dataset, 'decoded');
  const { stdout } = await fqtok('decode', path.join(dataset, 'codes'), '--out', images);
  assert.equal(JSON.parse(stdout).decoded, 5);
  const files = readdirSync(images).sort();
  assert.equal(files.length, 10); // 5 images x 2 views
  const meta = await sharp(path.join(images, '0_1.png')).metadata();
  assert.deepEqual([meta.width, meta.height], [256, 256]);
  const viaServer = path.join(dataset, 'decoded-remote');
  await fqtok('decode', local, '--out', viaServer, '--server', server.url);
  assert.deepEqual(readdirSync(viaServer).sort(), ['0.png', '1.png']);
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
