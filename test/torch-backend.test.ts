// The torch backend through HTTP on the shipped model: same tokens and decodes as onnx, and worker faults.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { appendFile, cp, mkdir, mkdtemp, readdir, readFile, rm, truncate } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import sharp from 'sharp';
import { readNpz } from '../src/formats/npz.ts';
import { exportModel } from './helpers/export-model.ts';
import { makeImage } from './helpers/images.ts';
import { PYTHON } from './helpers/python.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { ROOT } from './helpers/paths.ts';
import { startServerProcess } from './helpers/server-process.ts';
import { alive, waitFor } from './helpers/wait.ts';

const run = promisify(execFile);
const SHIPPED = path.join(ROOT, 'models', 'fqgan-triple-vq16-tiny');
// Tokens with a clear margin must be identical; a float32 tie (the two runtimes differ by ~1e-5 on
// the vectors compared) may flip, at most one token in a thousand (as test/parity.test.ts allows).
const MAX_TIED_SHARE = 1 / 1000;
// Decodes agree within 1e-3 in [-1,1]; after the 8-bit mapping floor(127.5x+128) that is at most one level.
const MAX_LEVEL_DIFFERENCE = 1;

let onnx: TestServer;
let torch: TestServer;
let scratch: string;

before(async () => {
  scratch = await mkdtemp(path.join(tmpdir(), 'fqtok-torch-'));
  onnx = await startTestServer();
  torch = await startTestServer({ FQ_BACKEND: 'torch', FQ_PYTHON: PYTHON });
});

after(async () => {
  await Promise.allSettled([onnx?.close(), torch?.close()]);
  await rm(scratch, { recursive: true, force: true });
});

function multipart(...images: Buffer[]): FormData {
  const form = new FormData();
  images.forEach((b, i) => form.append('image', new Blob([new Uint8Array(b)]), `i${i}.png`));
  return form;
}

interface EncodeBody {
  images: { tokens: Record<string, number[][]> }[];
}

async function encode(server: TestServer, query: string, images: Buffer[]): Promise<Response> {
  return fetch(`${server.url}/encode${query}`, { method: 'POST', body: multipart(...images) });
}

function compareTokens(a: EncodeBody, b: EncodeBody): void {
  assert.equal(a.images.length, b.images.length);
  let total = 0;
  let differ = 0;
  a.images.forEach((image, i) => {
    for (const [name, grid] of Object.entries(image.tokens)) {
      const other = b.images[i]!.tokens[name]!.flat();
      grid.flat().forEach((t, k) => {
        total++;
        if (t !== other[k]) differ++;
      });
    }
  });
  assert.ok(total > 0);
  assert.ok(differ <= total * MAX_TIED_SHARE, `${differ} of ${total} tokens differ between torch and onnx`);
}

async function maxLevelDifference(a: Buffer, b: Buffer): Promise<number> {
  const [x, y] = await Promise.all([sharp(a).raw().toBuffer(), sharp(b).raw().toBuffer()]);
  assert.equal(x.length, y.length);
  let max = 0;
  for (let i = 0; i < x.length; i++) max = Math.max(max, Math.abs(x[i]! - y[i]!));
  return max;
}

async function decodePng(server: TestServer, body: unknown, query = ''): Promise<Buffer> {
  const res = await fetch(`${server.url}/decode${query}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  assert.equal(res.status, 200, await res.clone().text());
  return Buffer.from(await res.arrayBuffer());
}

describe('torch backend on CPU vs onnx, through HTTP', () => {
  test('/models names the backend, device and precision of each', async () => {
    const [t, o] = await Promise.all([torch, onnx].map(async (s) => ((await (await fetch(`${s.url}/models`)).json()) as { models: Record<string, unknown>[] }).models[0]!));
    assert.deepEqual([t!.backend, t!.device, t!.precision, t!.ready], ['torch', 'cpu', 'fp32', true]);
    assert.deepEqual([o!.backend, o!.device, o!.precision], ['onnx', 'cpu', 'fp32']);
  });

  for (const augment of ['none', 'flip', 'ten_crop']) {
    test(`encode gives the same tokens (augment=${augment})`, async () => {
      const images = [await makeImage(300, 280, 'png', 1), await makeImage(256, 256, 'jpeg', 2), await makeImage(400, 320, 'png', 3)];
      const [a, b] = await Promise.all([torch, onnx].map(async (s) => {
        const res = await encode(s, `?augment=${augment}`, images);
        assert.equal(res.status, 200);
        return (await res.json()) as EncodeBody;
      }));
      compareTokens(a!, b!);
    });
  }

  test('NPZ encode holds the same arrays; NPZ decode gives the same images', async () => {
    const images = [await makeImage(300, 300, 'png', 4)];
    const [a, b] = await Promise.all([torch, onnx].map(async (s) => new Uint8Array(await (await encode(s, '?augment=flip&format=npz', images)).arrayBuffer())));
    const [x, y] = [await readNpz(a!, { maxBytes: 1 << 26 }), await readNpz(b!, { maxBytes: 1 << 26 })];
    for (const name of Object.keys(y)) {
      assert.deepEqual(x[name]!.shape, y[name]!.shape);
      const differ = x[name]!.data.filter((t, i) => t !== y[name]!.data[i]).length;
      assert.ok(differ <= x[name]!.data.length * MAX_TIED_SHARE, `${name}: ${differ} tokens differ`);
    }
    const decoded = await Promise.all([torch, onnx].map(async (s) => {
      const res = await fetch(`${s.url}/decode`, { method: 'POST', headers: { 'content-type': 'application/x-npz' }, body: b! });
      return ((await res.json()) as { images: { data: string }[] }).images.map((i) => Buffer.from(i.data, 'base64'));
    }));
    assert.equal(decoded[0]!.length, 2);
    for (let i = 0; i < 2; i++) assert.ok((await maxLevelDifference(decoded[0]![i]!, decoded[1]![i]!)) <= MAX_LEVEL_DIFFERENCE);
  });

  test(`decode (full and partial) agrees within ${MAX_LEVEL_DIFFERENCE} level of 255`, async () => {
    const encoded = (await (await encode(onnx, '', [await makeImage(256, 256, 'png', 9)])).json()) as EncodeBody;
    const tokens = encoded.images[0]!.tokens;
    for (const [body, query] of [
      [encoded, ''],
      [{ images: [{ tokens: { vis: tokens.vis, sem_high: tokens.sem_high } }] }, '?codebooks=vis,sem_high'],
      [{ images: [{ tokens: { vis: tokens.vis } }] }, '?codebooks=vis'],
    ] as const) {
      const [a, b] = await Promise.all([decodePng(torch, body, query), decodePng(onnx, body, query)]);
      const difference = await maxLevelDifference(a, b);
      assert.ok(difference <= MAX_LEVEL_DIFFERENCE, `${query || 'full'}: pixels differ by ${difference} levels`);
    }
  });

  test('a version exported from a checkpoint (as fine-tuning publishes) serves from its weights.pt', async () => {
    const out = path.join(scratch, 'converted');
    await exportModel(out, { checkpoint: path.join(SHIPPED, 'checkpoint.pt') });
    const manifest = JSON.parse(await readFile(path.join(out, 'manifest.json'), 'utf8')) as { weights: { file: string; sha256: string } };
    assert.equal(manifest.weights.file, 'weights.pt');
    assert.match(manifest.weights.sha256, /^[0-9a-f]{64}$/);
    await torch.registry.load('converted', 1, out);
    const images = [await makeImage(256, 256, 'png', 5)];
    const [a, b] = await Promise.all([encode(torch, '?model=converted', images), encode(onnx, '', images)].map(async (r) => (await (await r).json()) as EncodeBody));
    compareTokens(a!, b!);
    await torch.registry.unload('converted', 1);
  });
});

describe('torch worker faults', () => {
  const pidOf = (server: TestServer, model?: string) => server.registry.get(model).backendInfo.pid!;
  const until = (what: string, condition: () => boolean | Promise<boolean>, timeoutMs = 60_000) => waitFor(what, condition, timeoutMs);

  test('a worker killed during a request: that request gets 503 with Retry-After, the next one succeeds', async () => {
    const pid = pidOf(torch);
    process.kill(pid, 'SIGSTOP'); // holds the request inside the worker until the kill
    const image = await makeImage(256, 256);
    const inflight = encode(torch, '', [image]);
    try {
      await until('the request to reach the worker', () => torch.registry.get().backendInfo.pending === 1, 20_000);
    } finally {
      process.kill(pid, 'SIGKILL');
    }
    const res = await inflight;
    assert.equal(res.status, 503, await res.clone().text());
    assert.match(res.headers.get('retry-after') ?? '', /^\d+$/);
    assert.match(((await res.json()) as { detail: string }).detail, /torch worker exited/);
    const next = await encode(torch, '', [image]);
    assert.equal(next.status, 200);
    assert.notEqual(pidOf(torch), pid);
  });

  test('a hung worker is killed at the deadline (503, not a hung connection) and restarted', async () => {
    const server = await startTestServer({ FQ_BACKEND: 'torch', FQ_PYTHON: PYTHON, FQ_REQUEST_TIMEOUT_MS: '4000' });
    try {
      const pid = pidOf(server);
      process.kill(pid, 'SIGSTOP');
      const image = await makeImage(256, 256);
      const res = await encode(server, '', [image]);
      assert.equal(res.status, 503);
      assert.ok(res.headers.get('retry-after'));
      assert.match(((await res.json()) as { detail: string }).detail, /did not answer within/);
      // Requests wait for a restart only up to their deadline (4 s here): wait for the new worker.
      await until('a new worker', () => ![undefined, pid].includes(server.registry.get().backendInfo.pid));
      assert.equal((await encode(server, '', [image])).status, 200);
    } finally {
      await server.close();
    }
  });

  test('repeated start failures mark the version not ready with the reason; it recovers when the cause goes', async () => {
    const dir = path.join(scratch, 'fragile');
    await cp(SHIPPED, dir, { recursive: true });
    await torch.registry.load('fragile', 1, dir);
    const weights = path.join(dir, 'checkpoint.pt');
    const size = (await readFile(weights)).length;
    await appendFile(weights, Buffer.from('damage')); // no longer matches the manifest's sha256
    process.kill(pidOf(torch, 'fragile'), 'SIGKILL');
    await until('/readyz to report the version', async () => (await fetch(`${torch.url}/readyz`)).status === 503);
    const ready = await fetch(`${torch.url}/readyz`);
    assert.ok(ready.headers.get('retry-after'));
    assert.match(((await ready.json()) as { detail: string }).detail, /fragile@1: the torch worker failed to start 3 times.*sha256/);
    const model = (await (await fetch(`${torch.url}/models/fragile`)).json()) as { ready: boolean; not_ready_reason: string };
    assert.equal(model.ready, false);
    assert.match(model.not_ready_reason, /sha256/);
    assert.equal((await encode(torch, '?model=fragile', [await makeImage(64, 64)])).status, 503);
    await truncate(weights, size);
    await until('the worker to come back', async () => (await fetch(`${torch.url}/readyz`)).status === 200);
    assert.equal((await encode(torch, '?model=fragile', [await makeImage(64, 64)])).status, 200);
    await torch.registry.unload('fragile', 1);
  });
});

describe('torch worker lifetime', () => {
  test('workers die with the service after kill -9', { timeout: 120_000 }, async () => {
    const service = await startServerProcess({ FQ_BACKEND: 'torch', FQ_PYTHON: PYTHON });
    let workerPid: number | undefined;
    try {
      // The worker's pid comes from the service's log.
      workerPid = (await service.waitForLog('the worker to be ready', (l) => l.msg === 'torch worker ready')).pid as number;
      assert.ok(workerPid && alive(workerPid), 'the service logged its worker');
      service.child.kill('SIGKILL');
      await waitFor(`worker ${workerPid} to end with the service`, () => !alive(workerPid!), 20_000);
    } finally {
      await service.close();
      if (workerPid && alive(workerPid)) process.kill(workerPid, 'SIGKILL');
    }
  });
});

describe('fqtok encode --backend torch', () => {
  test('writes the same .npy files as with onnx', async () => {
    const images = path.join(scratch, 'cli-images');
    await mkdir(images, { recursive: true });
    for (let i = 0; i < 3; i++) await sharp(await makeImage(280 + i * 20, 260, 'png', i)).toFile(path.join(images, `${i}.png`));
    const outs: Record<string, string> = {};
    for (const backend of ['onnx', 'torch']) {
      outs[backend] = path.join(scratch, `codes-${backend}`);
      await run(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/cli.ts'), 'encode', images, '--out', outs[backend]!, '--augment', 'flip', '--backend', backend], {
        cwd: ROOT,
        env: { ...process.env, FQ_PYTHON: PYTHON, FQ_DATA_DIR: path.join(scratch, 'data') },
        timeout: 180_000,
      });
    }
    const files = (await readdir(outs.onnx!)).filter((f) => f.endsWith('.npy')).sort();
    assert.equal(files.length, 9);
    assert.deepEqual((await readdir(outs.torch!)).filter((f) => f.endsWith('.npy')).sort(), files);
    for (const f of files) assert.deepEqual(await readFile(path.join(outs.torch!, f)), await readFile(path.join(outs.onnx!, f)), f);
  });
});
