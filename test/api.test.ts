// End to end over HTTP against a real server: encode and decode in every input and output form.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import sharp from 'sharp';
import { createHash } from 'node:crypto';
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { readNpz, writeNpz } from '../src/formats/npz.ts';
import { readSampleArchive } from '../src/formats/sample-archive.ts';
import { makeImage } from './helpers/images.ts';
import { ResponseValidator } from './helpers/openapi.ts';
import { PYTHON } from './helpers/python.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';

let server: TestServer;
let validator: ResponseValidator;
let model: { name: string; grid: [number, number]; codebooks: { name: string; size: number }[] };

async function call(method: string, route: string, path: string, init: RequestInit = {}): Promise<Response> {
  const response = await fetch(server.url + path, { method, ...init });
  await validator.check(method, route, response);
  return response;
}

function multipart(...files: Buffer[]): FormData {
  const form = new FormData();
  files.forEach((f, i) => form.append('image', new Blob([new Uint8Array(f)], { type: 'image/png' }), `img${i}.png`));
  return form;
}

interface EncodeBody {
  model: string;
  version: number;
  grid: [number, number];
  codebooks: string[];
  views: string[];
  images: { index: number; view: string; name?: string; tokens: Record<string, number[][]> }[];
}

before(async () => {
  server = await startTestServer();
  validator = new ResponseValidator(server.app);
  const list = (await (await fetch(`${server.url}/models`)).json()) as { default: string; models: (typeof model)[] };
  model = list.models.find((m) => m.name === list.default)!;
});
after(() => server.close());

describe('health and models', () => {
  test('healthz, readyz and models describe the shipped default model', async () => {
    assert.equal((await call('GET', '/healthz', '/healthz')).status, 200);
    assert.equal((await call('GET', '/readyz', '/readyz')).status, 200);
    const list = await call('GET', '/models', '/models');
    assert.equal(list.status, 200);
    const one = await call('GET', '/models/{name}', `/models/${model.name}`);
    const detail = (await one.json()) as { versions: number[]; execution_provider: string; manifest: { variant: string } };
    assert.deepEqual(detail.versions, [1]);
    assert.equal(detail.execution_provider, 'cpu');
    assert.equal(detail.manifest.variant, 'triple');
    assert.deepEqual(model.codebooks.map((c) => c.name), ['vis', 'sem_mid', 'sem_high']);
  });
});

describe('POST /encode', () => {
  test('multipart with two images gives one grid per codebook and image, in range', async () => {
    const res = await call('POST', '/encode', '/encode', { body: multipart(await makeImage(300, 200), await makeImage(256, 256, 'png', 3)) });
    assert.equal(res.status, 200);
    const body = (await res.json()) as EncodeBody;
    assert.equal(body.images.length, 2);
    assert.deepEqual(body.grid, model.grid);
    assert.deepEqual(body.codebooks, ['vis', 'sem_mid', 'sem_high']);
    for (const image of body.images) {
      assert.equal(image.view, 'center');
      for (const cb of model.codebooks) {
        const grid = image.tokens[cb.name]!;
        assert.equal(grid.length, model.grid[0]);
        assert.ok(grid.every((row) => row.length === model.grid[1] && row.every((v) => Number.isInteger(v) && v >= 0 && v < cb.size)));
      }
    }
    assert.equal(body.images[0]!.name, 'img0.png');
  });

  test('raw, JSON base64 and data-URL bodies give the same tokens as multipart', async () => {
    const png = await makeImage(320, 240, 'png', 5);
    const viaMultipart = (await (await call('POST', '/encode', '/encode', { body: multipart(png) })).json()) as EncodeBody;
    const viaRaw = (await (await call('POST', '/encode', '/encode', { body: new Uint8Array(png), headers: { 'content-type': 'image/png' } })).json()) as EncodeBody;
    const viaJson = (await (
      await call('POST', '/encode', '/encode', {
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ images: [png.toString('base64'), { data: `data:image/png;base64,${png.toString('base64')}`, name: 'x.png' }] }),
      })
    ).json()) as EncodeBody;
    assert.deepEqual(viaRaw.images[0]!.tokens, viaMultipart.images[0]!.tokens);
    assert.deepEqual(viaJson.images[0]!.tokens, viaMultipart.images[0]!.tokens);
    assert.deepEqual(viaJson.images[1]!.tokens, viaMultipart.images[0]!.tokens);
  });

  test('augment flip and ten_crop give 2 and 10 views; codebooks selects a subset', async () => {
    const jpeg = await makeImage(400, 300, 'jpeg');
    const flip = (await (await call('POST', '/encode', '/encode?augment=flip&codebooks=vis,sem_high', { body: multipart(jpeg) })).json()) as EncodeBody;
    assert.deepEqual(flip.views, ['center', 'flip']);
    assert.deepEqual(flip.codebooks, ['vis', 'sem_high']);
    assert.deepEqual(Object.keys(flip.images[0]!.tokens), ['vis', 'sem_high']);
    const ten = (await (await call('POST', '/encode', '/encode?augment=ten_crop', { body: multipart(jpeg) })).json()) as EncodeBody;
    assert.equal(ten.images.length, 10);
    assert.equal(ten.views.length, 10);
  });

  test('NPZ output (format=npz or Accept) holds int32 [N, A, h, w] arrays named after the codebooks', async () => {
    const images = [await makeImage(256, 256), await makeImage(280, 260, 'png', 2)];
    const json = (await (await call('POST', '/encode', '/encode?augment=flip', { body: multipart(...images) })).json()) as EncodeBody;
    for (const request of [
      { path: '/encode?augment=flip&format=npz', headers: {} as Record<string, string> },
      { path: '/encode?augment=flip', headers: { accept: 'application/x-npz' } },
    ]) {
      const res = await call('POST', '/encode', request.path, { body: multipart(...images), headers: request.headers });
      assert.equal(res.headers.get('content-type'), 'application/x-npz');
      const arrays = await readNpz(new Uint8Array(await res.arrayBuffer()), { maxBytes: 1 << 24 });
      assert.deepEqual(Object.keys(arrays).sort(), ['sem_high', 'sem_mid', 'vis']);
      const [h, w] = model.grid;
      assert.deepEqual(arrays.vis!.shape, [2, 2, h, w]);
      // image 1, view flip, row 0 equals the JSON's grid
      const offset = (1 * 2 + 1) * h * w;
      assert.deepEqual(Array.from(arrays.vis!.data.subarray(offset, offset + w)), json.images[3]!.tokens.vis![0]);
    }
  });
});

describe('POST /decode', () => {
  test('an /encode JSON response posted as it is decodes to a 256x256 PNG', async () => {
    const encoded = await (await call('POST', '/encode', '/encode', { body: multipart(await makeImage(256, 256)) })).text();
    const res = await call('POST', '/decode', '/decode', { headers: { 'content-type': 'application/json' }, body: encoded });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'image/png');
    const meta = await sharp(Buffer.from(await res.arrayBuffer())).metadata();
    assert.deepEqual([meta.width, meta.height, meta.format], [256, 256, 'png']);
  });

  test('NPZ round trip with several images gives JSON with base64 images; jpeg and webp formats', async () => {
    const npz = await (await call('POST', '/encode', '/encode?format=npz&augment=flip', { body: multipart(await makeImage(300, 300)) })).arrayBuffer();
    for (const format of ['jpeg', 'webp'] as const) {
      const res = await call('POST', '/decode', `/decode?format=${format}`, { headers: { 'content-type': 'application/x-npz' }, body: npz });
      const body = (await res.json()) as { images: { content_type: string; data: string }[] };
      assert.equal(body.images.length, 2);
      assert.equal(body.images[0]!.content_type, `image/${format}`);
      const meta = await sharp(Buffer.from(body.images[1]!.data, 'base64')).metadata();
      assert.equal(meta.format, format);
    }
  });

  test('partial decoding masks codebooks: needs only the chosen grids and changes the image', async () => {
    const encoded = (await (await call('POST', '/encode', '/encode', { body: multipart(await makeImage(256, 256, 'png', 9)) })).json()) as EncodeBody;
    const decode = async (body: unknown, query = '') =>
      Buffer.from(await (await call('POST', '/decode', `/decode${query}`, { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })).arrayBuffer());
    const full = await decode(encoded);
    const onlyVis = await decode({ images: [{ tokens: { vis: encoded.images[0]!.tokens.vis } }] }, '?codebooks=vis');
    const rawFull = await sharp(full).raw().toBuffer();
    const rawVis = await sharp(onlyVis).raw().toBuffer();
    assert.notDeepEqual(rawFull, rawVis);
  });
});

describe('POST /decode: flat sequences and evaluation archives', () => {
  const N = 3;
  const CELLS = 256;
  /** Deterministic tokens in range: [N * 256] per codebook, grid-major. */
  const tokens = () =>
    Object.fromEntries(model.codebooks.map((cb, k) => [cb.name, Int32Array.from({ length: N * CELLS }, (_, i) => (i * 7919 + k * 104729) % cb.size)]));
  const npzOf = (shape: number[], pick = (d: Int32Array) => d) =>
    Buffer.from(writeNpz(Object.fromEntries(Object.entries(tokens()).map(([n, d]) => [n, { shape, data: pick(d) }]))));
  const postNpz = (body: Uint8Array<ArrayBuffer>, query: string, headers: Record<string, string> = {}) =>
    call('POST', '/decode', `/decode${query}`, { headers: { 'content-type': 'application/x-npz', ...headers }, body });
  const postJson = (body: unknown, query: string) =>
    call('POST', '/decode', `/decode${query}`, { headers: { 'content-type': 'application/json', accept: 'application/json' }, body: JSON.stringify(body) });
  const archivePixels = async (res: Response) => {
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'application/x-npz');
    const bytes = new Uint8Array(await res.arrayBuffer());
    assert.equal(Number(res.headers.get('content-length')), bytes.length);
    return { bytes, ...readSampleArchive(bytes) };
  };
  const pngPixels = async (res: Response) => {
    const body = (await res.json()) as { images: { data: string }[] };
    return Buffer.concat(await Promise.all(body.images.map((i) => sharp(Buffer.from(i.data, 'base64')).raw().toBuffer())));
  };

  test('every accepted layout decodes to the same images as the grid form, as PNGs and as an archive', async () => {
    const grid = await archivePixels(await postNpz(npzOf([N, 16, 16]), '?format=npz'));
    assert.deepEqual(grid.shape, [N, 256, 256, 3]);
    // The archive holds exactly the pixels of the PNGs the same grids decode to.
    assert.deepEqual(Buffer.from(grid.rgb), await pngPixels(await postNpz(npzOf([N, 16, 16]), '', { accept: 'application/json' })));
    for (const shape of [[N, CELLS], [1, N, CELLS], [N, 1, CELLS], [1, N, 16, 16]]) {
      const flat = await archivePixels(await postNpz(npzOf(shape), '?format=npz'));
      assert.deepEqual(flat.shape, [N, 256, 256, 3], `shape [${shape}]`);
      assert.ok(Buffer.from(flat.rgb).equals(Buffer.from(grid.rgb)), `shape [${shape}] decodes differently`);
    }
    // Accept: application/x-npz chooses the archive too; one flat [h*w] is one image.
    const one = await archivePixels(await postNpz(npzOf([CELLS], (d) => d.subarray(0, CELLS)), '', { accept: 'application/x-npz' }));
    assert.deepEqual(one.shape, [1, 256, 256, 3]);
    assert.ok(Buffer.from(one.rgb).equals(Buffer.from(grid.rgb.subarray(0, 256 * 256 * 3))));
    // JSON: an AR sampler's [B, h*w] per codebook, and /encode-shaped images with flat rows.
    const rows = Object.fromEntries(Object.entries(tokens()).map(([n, d]) => [n, Array.from({ length: N }, (_, i) => Array.from(d.subarray(i * CELLS, (i + 1) * CELLS)))]));
    assert.ok((await pngPixels(await postJson({ tokens: rows }, ''))).equals(Buffer.from(grid.rgb)));
    const images = Array.from({ length: N }, (_, i) => ({ tokens: Object.fromEntries(Object.entries(rows).map(([n, r]) => [n, r[i]!])) }));
    assert.ok((await pngPixels(await postJson({ images }, ''))).equals(Buffer.from(grid.rgb)));
    const viaJson = await archivePixels(await call('POST', '/decode', '/decode', { headers: { 'content-type': 'application/json' }, body: JSON.stringify({ tokens: rows, format: 'npz' }) }));
    assert.ok(Buffer.from(viaJson.rgb).equals(Buffer.from(grid.rgb)));
  });

  test('numpy loads the archive: arr_0 is uint8 [N, 256, 256, 3] with the decoded pixels', async () => {
    const archive = await archivePixels(await postNpz(npzOf([N, CELLS]), '?format=npz'));
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'fqtok-archive-')), 'samples.npz');
    writeFileSync(file, archive.bytes);
    const script = `
import hashlib, json, sys
import numpy as np
with np.load(sys.argv[1]) as f:
    a = f['arr_0']
    print(json.dumps({'files': f.files, 'dtype': str(a.dtype), 'shape': list(a.shape), 'sha256': hashlib.sha256(a.tobytes()).hexdigest()}))`;
    const { stdout } = await promisify(execFile)(PYTHON, ['-c', script, file]);
    assert.deepEqual(JSON.parse(stdout), {
      files: ['arr_0'],
      dtype: 'uint8',
      shape: [N, 256, 256, 3],
      sha256: createHash('sha256').update(archive.rgb).digest('hex'),
    });
  });
});

describe('batching', () => {
  test('concurrent requests share inference runs and /metrics reports it', async () => {
    const png = await makeImage(256, 256);
    await Promise.all(Array.from({ length: 12 }, () => call('POST', '/encode', '/encode', { body: multipart(png) }).then((r) => r.arrayBuffer())));
    const metrics = await (await call('GET', '/metrics', '/metrics')).text();
    const count = Number(/fqtok_batch_size_count\{model="[^"]+",operation="encode"\} (\d+)/.exec(metrics)?.[1]);
    const sum = Number(/fqtok_batch_size_sum\{model="[^"]+",operation="encode"\} (\d+)/.exec(metrics)?.[1]);
    assert.ok(sum / count > 1, `mean batch ${sum}/${count} should exceed 1`);
    assert.match(metrics, /fqtok_http_requests_total\{route="\/encode",method="POST",status="200"\}/);
    assert.match(metrics, /fqtok_http_request_duration_seconds_bucket/);
    assert.match(metrics, /fqtok_queue_depth/);
    assert.match(metrics, /fqtok_images_processed_total\{model="[^"]+",operation="encode"\}/);
  });
});
