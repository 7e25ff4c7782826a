// A model exported at 128 px (not the usual 256) is served end to end: HTTP encode/decode and the CLI.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, test } from 'node:test';
import sharp from 'sharp';
import { exportModel } from './helpers/export-model.ts';
import { PYTHON } from './helpers/python.ts';
import { makeImage } from './helpers/images.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { ROOT } from './helpers/paths.ts';

const MODEL = 'small-128';
const run = promisify(execFile);

let modelsDir: string;
let server: TestServer | undefined;

before(async () => {
  modelsDir = mkdtempSync(path.join(tmpdir(), 'fqtok-128-'));
  await exportModel(path.join(modelsDir, MODEL), { preset: 'test-16', imageSize: 128, seed: 3 });
  server = await startTestServer({ FQ_MODELS_DIR: modelsDir, FQ_DATA_DIR: path.join(modelsDir, 'data') });
}, { timeout: 180_000 });

after(async () => {
  await server?.close();
  rmSync(modelsDir, { recursive: true, force: true });
});

test('HTTP: /models reports 128 px; /encode crops to 128 (8x8 grids, every augment); /decode returns 128x128 images', async () => {
  const info = (await (await fetch(`${server!.url}/models/${MODEL}`)).json()) as { image_size: number };
  assert.equal(info.image_size, 128);
  const image = await makeImage(300, 200, 'jpeg');
  for (const [augment, views] of [['none', 1], ['flip', 2], ['ten_crop', 10]] as const) {
    const res = await fetch(`${server!.url}/encode?augment=${augment}`, { method: 'POST', headers: { 'content-type': 'image/jpeg' }, body: new Uint8Array(image) });
    const body = (await res.json()) as { grid: number[]; images: { tokens: Record<string, number[][]> }[]; detail?: string };
    assert.equal(res.status, 200, body.detail);
    assert.deepEqual(body.grid, [8, 8]);
    assert.equal(body.images.length, views);
    assert.equal(body.images[0]!.tokens.vis!.length, 8);
    if (augment === 'none') {
      const decoded = await fetch(`${server!.url}/decode`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      assert.equal(decoded.status, 200);
      const meta = await sharp(Buffer.from(await decoded.arrayBuffer())).metadata();
      assert.deepEqual([meta.width, meta.height], [128, 128]);
    }
  }
});

test('CLI: fqtok encode in-process writes [1, 1, 64] codes for the 128 px model, and decode rebuilds 128x128 images', async () => {
  const work = mkdtempSync(path.join(tmpdir(), 'fqtok-128-cli-'));
  try {
    mkdirSync(path.join(work, 'images', 'a'), { recursive: true });
    writeFileSync(path.join(work, 'images', 'a', '0.png'), await makeImage(160, 144));
    const env = { ...process.env, FQ_LOG_LEVEL: 'silent', FQ_MODELS_DIR: modelsDir, FQ_DATA_DIR: path.join(work, 'data') };
    const cli = (...args: string[]) => run(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/cli.ts'), ...args], { cwd: ROOT, env, timeout: 120_000 });
    const codes = path.join(work, 'codes');
    const { stdout } = await cli('encode', path.join(work, 'images'), '--out', codes, '--model', MODEL);
    assert.equal((JSON.parse(stdout) as { encoded: number }).encoded, 1);
    const script = 'import numpy as np, sys; a = np.load(sys.argv[1]); print(a.dtype, list(a.shape))';
    assert.equal((await run(PYTHON, ['-c', script, path.join(codes, '0_vis.npy')])).stdout.trim(), 'int64 [1, 1, 64]');
    const recon = path.join(work, 'recon');
    await cli('decode', codes, '--out', recon, '--model', MODEL);
    assert.deepEqual(readdirSync(recon), ['0.png']);
    const meta = await sharp(path.join(recon, '0.png')).metadata();
    assert.deepEqual([meta.width, meta.height], [128, 128]);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});
