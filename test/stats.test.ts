// Codebook usage (`POST /stats`, `fqtok stats`) against numpy computed on the same files.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, test } from 'node:test';
import sharp from 'sharp';
import { writeNpy, writeNpz } from '../src/formats/npz.ts';
import { ResponseValidator } from './helpers/openapi.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { ROOT } from './helpers/paths.ts';
import { PYTHON as python } from './helpers/python.ts';

const run = promisify(execFile);
const CODEBOOKS = ['vis', 'sem_mid', 'sem_high'];
const CELLS = 256;

interface Usage {
  codebook: string;
  size: number;
  tokens: number;
  used: number;
  dead: number;
  perplexity: number;
  top: { code: number; count: number }[];
}

/** numpy's view of the codes: all .npy files of a folder, or every array of an .npz. */
const ORACLE = `
import glob, json, os, sys
import numpy as np
where, top = sys.argv[1], int(sys.argv[2])
if os.path.isdir(where):
    arrays = {cb: np.concatenate([np.load(f).ravel() for f in sorted(glob.glob(os.path.join(where, f'*_{cb}.npy')))]) for cb in ('vis', 'sem_mid', 'sem_high')}
else:
    with np.load(where) as f:
        arrays = {k: f[k].ravel() for k in f.files}
out = {}
for cb, a in arrays.items():
    codes, counts = np.unique(a, return_counts=True)
    p = counts / counts.sum()
    order = np.lexsort((codes, -counts))[:top]
    out[cb] = {'tokens': int(a.size), 'used': int(codes.size), 'perplexity': float(np.exp(-(p * np.log(p)).sum())),
               'top': [{'code': int(codes[i]), 'count': int(counts[i])} for i in order]}
print(json.dumps(out))`;

async function numpyUsage(where: string, top: number): Promise<Record<string, { tokens: number; used: number; perplexity: number; top: Usage['top'] }>> {
  return JSON.parse((await run(python, ['-c', ORACLE, where, String(top)])).stdout);
}

function assertAgrees(ours: Usage[], oracle: Awaited<ReturnType<typeof numpyUsage>>): void {
  assert.deepEqual(ours.map((u) => u.codebook), CODEBOOKS);
  for (const u of ours) {
    const o = oracle[u.codebook]!;
    assert.equal(u.tokens, o.tokens, u.codebook);
    assert.equal(u.used, o.used, u.codebook);
    assert.equal(u.dead, 16384 - o.used, u.codebook);
    assert.ok(Math.abs(u.perplexity - o.perplexity) <= 1e-9 * o.perplexity, `${u.codebook}: perplexity ${u.perplexity} vs numpy ${o.perplexity}`);
    assert.deepEqual(u.top, o.top, u.codebook);
  }
}

let server: TestServer;
let validator: ResponseValidator;
let dir: string;
before(async () => {
  server = await startTestServer();
  validator = new ResponseValidator(server.app);
  dir = mkdtempSync(path.join(tmpdir(), 'fqtok-stats-'));
  mkdirSync(path.join(dir, 'codes'));
  // Skewed codes with ties: a few hundred distinct per codebook, most of the 16,384 dead.
  const tokens = (k: number, n: number) => Int32Array.from({ length: n * CELLS }, (_, i) => (((i * i) % 613) * (k + 3)) % 16384);
  CODEBOOKS.forEach((name, k) => {
    const all = tokens(k, 10);
    for (let i = 0; i < 5; i++) writeFileSync(path.join(dir, 'codes', `${i}_${name}.npy`), writeNpy({ shape: [1, 2, CELLS], data: all.subarray(i * 2 * CELLS, (i + 1) * 2 * CELLS) }, 'int64'));
  });
  writeFileSync(path.join(dir, 'sequences.npz'), writeNpz(Object.fromEntries(CODEBOOKS.map((n, k) => [n, { shape: [7, CELLS], data: tokens(k, 7) }]))));
});
after(() => server.close());

const postStats = (body: Uint8Array, query = '') =>
  fetch(`${server.url}/stats${query}`, { method: 'POST', headers: { 'content-type': 'application/x-npz' }, body: body as Uint8Array<ArrayBuffer> });

test('POST /stats on an uploaded NPZ agrees with numpy; format=png is a histogram', async () => {
  const res = await postStats(readFileSync(path.join(dir, 'sequences.npz')), '?top=12');
  await validator.check('POST', '/stats', res.clone());
  assert.equal(res.status, 200);
  const body = (await res.json()) as { images: number; grids: number; codebooks: Usage[] };
  assert.deepEqual([body.images, body.grids], [7, 7]);
  assertAgrees(body.codebooks, await numpyUsage(path.join(dir, 'sequences.npz'), 12));
  const png = await postStats(readFileSync(path.join(dir, 'sequences.npz')), '?format=png');
  assert.equal(png.headers.get('content-type'), 'image/png');
  const meta = await sharp(Buffer.from(await png.arrayBuffer())).metadata();
  assert.deepEqual([meta.format, meta.width, meta.height], ['png', 1024, 3 * 140]);
});

test('POST /stats refuses a wrong length (naming 256) and codes outside the codebook', async () => {
  const bad = writeNpz({ vis: { shape: [2, 100], data: new Int32Array(200) } });
  const res = await postStats(bad);
  assert.equal(res.status, 422);
  assert.match(((await res.json()) as { detail: string }).detail, /\[2, 100\].*256 tokens per image/);
  const outside = await postStats(writeNpz({ vis: { shape: [CELLS], data: new Int32Array(CELLS).fill(20000) } }));
  assert.equal(outside.status, 422);
  assert.match(((await outside.json()) as { detail: string }).detail, /20000 is not a code of \[0, 16384\)/);
});

test('fqtok stats on a folder of extractor codes agrees with numpy and writes a PNG histogram', async () => {
  const png = path.join(dir, 'usage.png');
  const { stdout } = await run(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/cli.ts'), 'stats', path.join(dir, 'codes'), '--top', '5', '--png', png], {
    cwd: ROOT,
    env: { ...process.env, FQ_LOG_LEVEL: 'silent', FQ_MODELS_DIR: path.join(ROOT, 'models') },
  });
  const body = JSON.parse(stdout) as { images: number; grids: number; codebooks: Usage[] };
  assert.deepEqual([body.images, body.grids], [5, 10], 'five extractor files of [1, 2 views, 256]: 5 images, 10 grids');
  assertAgrees(body.codebooks, await numpyUsage(path.join(dir, 'codes'), 5));
  const meta = await sharp(png).metadata();
  assert.deepEqual([meta.format, meta.width], ['png', 1024]);
});
