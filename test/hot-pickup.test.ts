// Hot pickup over HTTP: model folders that appear in FQ_MODELS_DIR while the server runs are served,
// half-written ones never are, replaced ones reload, removed ones unload after their in-flight requests.
import assert from 'node:assert/strict';
import { cp, mkdir, mkdtemp, readFile, rename, rm, truncate, writeFile, appendFile } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { readSampleArchive } from '../src/formats/sample-archive.ts';
import { exportModel } from './helpers/export-model.ts';
import { waitFor } from './helpers/wait.ts';
import { makeImage } from './helpers/images.ts';
import { ResponseValidator } from './helpers/openapi.ts';
import { ROOT, startTestServer, type TestServer } from './helpers/server.ts';

const SHIPPED = path.join(ROOT, 'models', 'fqgan-triple-vq16-tiny');

interface ModelDetail {
  name: string;
  version: number;
  versions: number[];
  loaded_at: string;
  loaded_versions: { version: number; loaded_at: string }[];
  codebooks: { name: string; size: number }[];
}

let work: string;
let tiny: string; // a test-16 model exported by the trainer (its manifest lists every file's size and sha256)

before(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'fqtok-pickup-'));
  tiny = path.join(work, 'tiny');
  await exportModel(tiny, { preset: 'test-16' });
});
after(() => rm(work, { recursive: true, force: true }));

async function modelsDir(name: string): Promise<string> {
  const dir = path.join(work, name);
  await mkdir(dir, { recursive: true });
  await cp(tiny, path.join(dir, 'base'), { recursive: true });
  return dir;
}

/** Writes a model folder as a publisher must: beside its place (a dot name, same file system), then one rename. */
async function publish(source: string, target: string): Promise<void> {
  const staging = path.join(path.dirname(target), `.tmp-${path.basename(target)}`);
  await cp(source, staging, { recursive: true });
  await rename(staging, target);
}

const detail = async (server: TestServer, name: string): Promise<ModelDetail | undefined> => {
  const response = await fetch(`${server.url}/models/${name}`);
  if (response.status === 404) return undefined;
  assert.equal(response.status, 200);
  return (await response.json()) as ModelDetail;
};

async function encodeWith(server: TestServer, model: string): Promise<Response> {
  const body = new Uint8Array(await makeImage(256, 256, 'png', 3));
  return fetch(`${server.url}/encode?model=${model}`, { method: 'POST', headers: { 'content-type': 'image/png' }, body });
}

describe('events (no polling)', () => {
  let server: TestServer;
  let dir: string;
  before(async () => {
    dir = await modelsDir('events');
    server = await startTestServer({ FQ_MODELS_DIR: dir, FQ_MODELS_POLL_MS: '0', FQ_MODELS_WATCH: '1', FQ_MAX_BATCH: '2' });
  });
  after(() => server?.close());

  test('a model renamed into the folder is served within seconds, and /models says when it was loaded', async () => {
    const before = Date.now();
    await publish(tiny, path.join(dir, 'arrived'));
    const found = await waitFor('the new model on /models', () => detail(server, 'arrived'), 10_000, 50);
    assert.deepEqual(found.versions, [1]);
    assert.ok(Date.parse(found.loaded_at) >= before - 1000, found.loaded_at);
    assert.deepEqual(found.loaded_versions, [{ version: 1, loaded_at: found.loaded_at }]);
    const encoded = await encodeWith(server, 'arrived');
    assert.equal(encoded.status, 200);
    assert.equal(encoded.headers.get('x-fqtok-model'), 'arrived@1');
    const validator = new ResponseValidator(server.app);
    const listed = await fetch(`${server.url}/models`);
    await validator.check('GET', '/models', listed);
    const list = (await listed.json()) as { models: { name: string; loaded_at: string }[] };
    assert.deepEqual(list.models.map((m) => m.name), ['arrived', 'base']);
    assert.ok(list.models.every((m) => !Number.isNaN(Date.parse(m.loaded_at))));
    await validator.check('GET', '/models/{name}', await fetch(`${server.url}/models/arrived`));
  });

  test('a folder written file by file is never loaded until every file matches its manifest', async () => {
    const target = path.join(dir, 'halfway');
    await mkdir(target);
    // The manifest first and the decoder cut short: what a plain `cp -r` looks like halfway.
    await cp(path.join(tiny, 'manifest.json'), path.join(target, 'manifest.json'));
    await cp(path.join(tiny, 'encoder.onnx'), path.join(target, 'encoder.onnx'));
    await cp(path.join(tiny, 'checkpoint.pt'), path.join(target, 'checkpoint.pt'));
    const decoder = await readFile(path.join(tiny, 'decoder.onnx'));
    await writeFile(path.join(target, 'decoder.onnx'), decoder.subarray(0, decoder.length >> 1));
    await server.pickup.scan(); // a scan that saw the half-written folder
    assert.equal(await detail(server, 'halfway'), undefined);
    assert.equal((await encodeWith(server, 'halfway')).status, 404);
    // Same size, wrong bytes (a copy whose tail is not written yet, say): still not loaded.
    await appendFile(path.join(target, 'decoder.onnx'), Buffer.alloc(decoder.length - (decoder.length >> 1)));
    await server.pickup.scan();
    assert.equal(await detail(server, 'halfway'), undefined);
    await truncate(path.join(target, 'decoder.onnx'), 0);
    await writeFile(path.join(target, 'decoder.onnx'), decoder);
    await waitFor('the completed model', () => detail(server, 'halfway'), 10_000, 50);
    assert.equal((await encodeWith(server, 'halfway')).status, 200);
  });

  test('a manifest without checksums (an older export) is loaded once its folder stops changing, never without its files', async () => {
    const target = path.join(dir, 'older');
    await mkdir(target);
    const manifest = JSON.parse(await readFile(path.join(tiny, 'manifest.json'), 'utf8')) as Record<string, unknown>;
    delete manifest.files;
    await writeFile(path.join(target, 'manifest.json'), JSON.stringify(manifest));
    await cp(path.join(tiny, 'encoder.onnx'), path.join(target, 'encoder.onnx'));
    await server.pickup.scan();
    assert.equal(await detail(server, 'older'), undefined, 'loaded without its decoder');
    await cp(path.join(tiny, 'decoder.onnx'), path.join(target, 'decoder.onnx'));
    await cp(path.join(tiny, 'checkpoint.pt'), path.join(target, 'checkpoint.pt'));
    await waitFor('the settled model', () => detail(server, 'older'), 15_000, 50);
    assert.equal((await encodeWith(server, 'older')).status, 200);
  });

  test('a model folder replaced (two renames) is reloaded: the new files serve', async () => {
    const target = path.join(dir, 'swapped');
    await publish(tiny, target);
    const first = await waitFor('the first model', () => detail(server, 'swapped'), 10_000, 50);
    assert.equal(first.codebooks[0]!.size, 256); // test-16
    await publish(SHIPPED, path.join(dir, '.next'));
    await rename(target, path.join(dir, '.old'));
    await rename(path.join(dir, '.next'), target);
    const second = await waitFor('the replacement', async () => {
      const d = await detail(server, 'swapped');
      return d && d.codebooks[0]!.size === 16384 ? d : undefined; // tiny-16
    }, 10_000, 50);
    assert.ok(Date.parse(second.loaded_at) >= Date.parse(first.loaded_at));
    assert.equal((await encodeWith(server, 'swapped')).status, 200);
    await rm(path.join(dir, '.old'), { recursive: true });
  });

  test('a removed model is unloaded only after its in-flight request finishes; new requests no longer find it', async () => {
    const target = path.join(dir, 'leaving');
    await publish(tiny, target);
    await waitFor('the model', () => detail(server, 'leaving'), 10_000, 50);
    // A streamed decode archive of 32 grids (seconds of decoding on a CPU), its reading paused after the
    // first bytes: the request is in flight while the model is removed.
    const count = 32;
    const grid = Array.from({ length: count }, (_, i) => Array.from({ length: 256 }, (_, j) => (i + j) % 256));
    const body = JSON.stringify({ tokens: { vis: grid, sem_mid: grid, sem_high: grid } });
    const chunks: Buffer[] = [];
    let response!: http.IncomingMessage;
    const firstBytes = new Promise<void>((resolve, reject) => {
      const request = http.request(`${server.url}/decode?model=leaving&format=npz`, { method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
        response = res;
        res.once('data', (chunk: Buffer) => {
          chunks.push(chunk);
          res.pause();
          resolve();
        });
      });
      request.on('error', reject);
      request.end(body);
    });
    await firstBytes;
    assert.equal(response.statusCode, 200);
    await rm(target, { recursive: true });
    await server.pickup.scan();
    await server.pickup.scan(); // a folder missing at two scans is gone (not a swap between two renames)
    assert.equal(await detail(server, 'leaving'), undefined);
    assert.equal((await encodeWith(server, 'leaving')).status, 404);
    assert.equal(server.pickup.unloadsInProgress, 1, 'the unload waits for the request being answered');
    const rest = new Promise<void>((resolve, reject) => {
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', resolve);
      response.on('error', reject);
    });
    response.resume();
    await rest;
    const archive = readSampleArchive(new Uint8Array(Buffer.concat(chunks)));
    assert.deepEqual(archive.shape, [count, 256, 256, 3]);
    await server.pickup.unloadsDone();
    assert.equal(server.pickup.unloadsInProgress, 0);
  });
});

describe('polling (no events, as on NFS or EFS)', () => {
  let server: TestServer;
  let dir: string;
  before(async () => {
    dir = await modelsDir('polling');
    server = await startTestServer({ FQ_MODELS_DIR: dir, FQ_MODELS_POLL_MS: '100', FQ_MODELS_WATCH: '0', FQ_DEFAULT_MODEL: 'base' });
  });
  after(() => server?.close());

  test('a version published in the Triton layout (<name>/<N>/) is served as that version', async () => {
    await mkdir(path.join(dir, 'base', '.staging'), { recursive: true }); // dot names are never models
    await publish(tiny, path.join(dir, 'base', '3'));
    const found = await waitFor('version 3', async () => {
      const d = await detail(server, 'base');
      return d?.versions.includes(3) ? d : undefined;
    }, 10_000, 50);
    assert.deepEqual(found.versions, [1, 3]);
    assert.equal(found.version, 3); // the latest serves by default
    assert.equal((await encodeWith(server, 'base')).headers.get('x-fqtok-model'), 'base@3');
  });

  test('without the default model the service is not ready, and says why', async () => {
    await publish(tiny, path.join(dir, 'other'));
    await waitFor('another model', () => detail(server, 'other'), 10_000, 50);
    assert.equal((await fetch(`${server.url}/readyz`)).status, 200);
    await rename(path.join(dir, 'base'), path.join(work, 'base-away'));
    const refused = await waitFor('readyz refusing', async () => {
      const r = await fetch(`${server.url}/readyz`);
      return r.status === 503 ? ((await r.json()) as { detail: string }) : undefined;
    }, 10_000, 50);
    assert.match(refused.detail, /default model 'base' is not loaded/);
    await rename(path.join(work, 'base-away'), path.join(dir, 'base'));
    await waitFor('readyz again', async () => ((await fetch(`${server.url}/readyz`)).status === 200 ? true : undefined), 10_000, 50);
  });
});
