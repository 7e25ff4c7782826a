// The HTTP routes the console uses besides the public API: POST /crop, /datasets, trainer fields, sample grids, /openapi.json, the pages' headers.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { createPreprocessor } from '../src/imaging/preprocess.ts';
import { ADMIN_TOKEN, bearer, CPU, makeDataset, tinyHyperparameters } from './helpers/finetune.ts';
import { exportModel } from './helpers/export-model.ts';
import { PYTHON } from './helpers/python.ts';
import { waitFor } from './helpers/wait.ts';
import { makeImage } from './helpers/images.ts';
import { ResponseValidator } from './helpers/openapi.ts';
import { ROOT, startTestServer, type TestServer } from './helpers/server.ts';

let tmp: string;
let server: TestServer;
let validator: ResponseValidator;

async function api(method: string, route: string, urlPath: string, init: RequestInit = {}): Promise<Response> {
  const res = await fetch(server.url + urlPath, { method, ...init });
  await validator.check(method, route, res);
  return res;
}

const raw = async (png: ArrayBuffer | Buffer) => sharp(Buffer.from(png as ArrayBuffer)).raw().toBuffer({ resolveWithObject: true });

before(async () => {
  tmp = await mkdtemp(path.join(tmpdir(), 'fqtok-console-api-'));
  await exportModel(path.join(tmp, 'models', 'tiny'), { preset: 'test-16' });
  const datasets = path.join(tmp, 'datasets');
  await makeDataset(path.join(datasets, 'photos'), 4);
  await makeDataset(path.join(datasets, 'nested', 'a'), 2);
  await makeDataset(path.join(datasets, 'nested', 'b'), 1);
  await mkdir(path.join(datasets, 'empty'));
  await writeFile(path.join(datasets, 'empty', 'notes.txt'), 'no images here');
  await makeDataset(path.join(tmp, 'outside'), 1);
  await symlink(path.join(tmp, 'outside'), path.join(datasets, 'escape'));
  await writeFile(path.join(datasets, 'README.txt'), 'a file, not a dataset');
  await mkdir(path.join(datasets, '.hidden'));
  server = await startTestServer({
    FQ_MODELS_DIR: path.join(tmp, 'models'),
    FQ_DATA_DIR: path.join(tmp, 'data'),
    FQ_DATASETS_DIR: datasets,
    FQ_ADMIN_TOKEN: ADMIN_TOKEN,
    FQ_PYTHON: PYTHON,
  });
  validator = new ResponseValidator(server.app);
});

after(async () => {
  await server?.close();
  await rm(tmp, { recursive: true, force: true });
});

describe('POST /crop', () => {
  test('answers the crop /encode tokenizes: the preprocessor output at the model size, as PNG', async () => {
    const photo = await makeImage(640, 480, 'jpeg', 3);
    const res = await api('POST', '/crop', '/crop', { body: new Uint8Array(photo), headers: { 'content-type': 'image/jpeg' } });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'image/png');
    const { data, info } = await raw(await res.arrayBuffer());
    assert.deepEqual([info.width, info.height, info.channels], [256, 256, 3]);
    const preprocessor = createPreprocessor({ maxInputPixels: 64_000_000, threads: 1 });
    try {
      const [expected] = await preprocessor.preprocess(new Uint8Array(photo), { imageSize: 256, orientation: 'ignore', augment: 'none' });
      assert.ok(Buffer.from(expected!).equals(data), 'the PNG holds exactly the crop bytes');
    } finally {
      await preprocessor.close();
    }
  });

  test('with augment=flip, JSON with both views: the second is the mirror of the first', async () => {
    const form = new FormData();
    form.append('image', new Blob([new Uint8Array(await makeImage(300, 200, 'png', 1))], { type: 'image/png' }), 'a.png');
    form.append('augment', 'flip');
    const res = await api('POST', '/crop', '/crop', { body: form });
    assert.equal(res.status, 200);
    const body = (await res.json()) as { views: string[]; image_size: number; images: { index: number; view: string; data: string }[] };
    assert.deepEqual(body.views, ['center', 'flip']);
    assert.deepEqual(body.images.map((i) => [i.index, i.view]), [[0, 'center'], [0, 'flip']]);
    const [center, flip] = await Promise.all(body.images.map((i) => raw(Buffer.from(i.data, 'base64'))));
    const mirrored = await sharp(center!.data, { raw: { width: 256, height: 256, channels: 3 } }).flop().raw().toBuffer();
    assert.ok(mirrored.equals(flip!.data));
  });

  test('bad input is a 4xx problem: no image, an undecodable one, a JSON body, an unknown model', async () => {
    const cases: [RequestInit, number, string][] = [
      [{ body: 'not an image', headers: { 'content-type': 'image/png' } }, 422, ''],
      [{ body: '{}', headers: { 'content-type': 'application/json' } }, 415, ''],
      [{ body: new Uint8Array(await makeImage(64, 64)), headers: { 'content-type': 'image/png' } }, 404, '?model=nope'],
    ];
    for (const [init, status, query] of cases) {
      const res = await api('POST', '/crop', `/crop${query}`, init);
      assert.equal(res.status, status, JSON.stringify(await res.clone().json()));
      assert.equal(res.headers.get('content-type'), 'application/problem+json');
    }
  });
});

describe('what a fine-tuning request may name (admin)', () => {
  test('GET /datasets: the folders under FQ_DATASETS_DIR with image counts, and why one would be refused', async () => {
    const res = await api('GET', '/datasets', '/datasets', { headers: bearer() });
    assert.equal(res.status, 200);
    const { data } = (await res.json()) as { data: { name: string; images: number; complete: boolean; problem: string | null }[] };
    const byName = Object.fromEntries(data.map((d) => [d.name, d]));
    assert.deepEqual(Object.keys(byName), ['empty', 'escape', 'nested', 'photos']); // no plain file, no hidden folder
    assert.deepEqual(byName.photos, { name: 'photos', images: 4, complete: true, problem: null });
    assert.equal(byName.nested!.images, 3);
    assert.match(byName.empty!.problem!, /no image files/);
    assert.match(byName.escape!.problem!, /outside the datasets root/);
  });

  test('admin only: 401 without a token, 403 with a wrong one', async () => {
    for (const [route, p] of [['/datasets', '/datasets'], ['/jobs/finetune/hyperparameters', '/jobs/finetune/hyperparameters']]) {
      assert.equal((await api('GET', route!, p!)).status, 401);
      assert.equal((await api('GET', route!, p!, { headers: bearer('not-the-admin-token-at-all') })).status, 403);
    }
  });

  test("GET /jobs/finetune/hyperparameters: the trainer's fields, defaults as --example-spec gives them, with limits", async () => {
    const res = await api('GET', '/jobs/finetune/hyperparameters', '/jobs/finetune/hyperparameters', { headers: bearer() });
    assert.equal(res.status, 200);
    const fields = (await res.json()) as Record<'hyperparameters' | 'device', { name: string; default: unknown; exclusiveMinimum?: number; enum?: string[] }[]>;
    const { stdout } = await promisify(execFile)(PYTHON, ['-m', 'fqgan.train', '--example-spec'], { cwd: path.join(ROOT, 'trainer') });
    const example = JSON.parse(stdout) as Record<string, Record<string, unknown>>;
    for (const section of ['hyperparameters', 'device'] as const) {
      assert.deepEqual(Object.fromEntries(fields[section].map((f) => [f.name, f.default])), example[section]);
    }
    const byName = Object.fromEntries(fields.hyperparameters.map((f) => [f.name, f]));
    assert.equal(byName.steps!.exclusiveMinimum, 0);
    assert.deepEqual(byName.rec_loss!.enum, ['l1', 'l2']);
  });
});

describe("a job's sample grids (admin)", () => {
  test('one PNG per evaluation, inputs above reconstructions, listed oldest first; unknown ones are 404', async () => {
    const created = await api('POST', '/jobs/finetune', '/jobs/finetune', {
      headers: { ...bearer(), 'content-type': 'application/json' },
      body: JSON.stringify({
        base_model: 'tiny',
        dataset: 'photos',
        output_model: 'sampled',
        hyperparameters: tinyHyperparameters(2, { eval_images: 2, eval_every: 1 }),
        device: CPU,
      }),
    });
    assert.equal(created.status, 202);
    const { id } = (await created.json()) as { id: string };
    await waitFor(`job ${id} to succeed`, async () => {
      const job = (await (await fetch(`${server.url}/jobs/${id}`, { headers: bearer() })).json()) as { status: string; error: unknown };
      assert.ok(!['failed', 'cancelled'].includes(job.status), JSON.stringify(job.error));
      return job.status === 'succeeded' ? job : undefined;
    });
    const list = await api('GET', '/jobs/{id}/samples', `/jobs/${id}/samples`, { headers: bearer() });
    const { data } = (await list.json()) as { data: { step: number; url: string }[] };
    assert.deepEqual(data.map((s) => [s.step, s.url]), [[1, `/jobs/${id}/samples/1`], [2, `/jobs/${id}/samples/2`]]);
    const png = await api('GET', '/jobs/{id}/samples/{step}', data[1]!.url, { headers: bearer() });
    assert.equal(png.headers.get('content-type'), 'image/png');
    const meta = await sharp(Buffer.from(await png.arrayBuffer())).metadata();
    assert.deepEqual([meta.width, meta.height], [2 * 256 + 3 * 2, 2 * 256 + 3 * 2]); // two held-out images, two rows

    assert.equal((await api('GET', '/jobs/{id}/samples/{step}', `/jobs/${id}/samples/7`, { headers: bearer() })).status, 404);
    assert.equal((await api('GET', '/jobs/{id}/samples/{step}', `/jobs/${id}/samples/x`, { headers: bearer() })).status, 400);
    assert.equal((await api('GET', '/jobs/{id}/samples', '/jobs/ftjob-nope/samples', { headers: bearer() })).status, 404);
    assert.equal((await api('GET', '/jobs/{id}/samples', '/jobs/..%2F..%2Fdata/samples', { headers: bearer() })).status, 404);
    assert.equal((await api('GET', '/jobs/{id}/samples/{step}', `/jobs/${id}/samples/1`, { headers: bearer('not-the-admin-token-at-all') })).status, 403);
  });
});

describe('the console and the API document', () => {
  test('/openapi.json is the document /openapi.yaml serves', async () => {
    const json = await (await fetch(`${server.url}/openapi.json`)).json();
    const { parse } = await import('yaml');
    assert.deepEqual(json, parse(await (await fetch(`${server.url}/openapi.yaml`)).text()));
  });

  test('pages and /docs carry a strict Content-Security-Policy and load nothing from another origin', async () => {
    for (const page of ['/', '/console/models', '/console/jobs', '/docs']) {
      const res = await fetch(server.url + page);
      assert.equal(res.status, 200, page);
      const csp = res.headers.get('content-security-policy') ?? '';
      assert.match(csp, /default-src 'none'/);
      assert.match(csp, /script-src 'self'(;|$)/, `${page}: no inline or foreign scripts`);
      assert.match(csp, /style-src 'self'(;|$)/);
      const html = await res.text();
      assert.doesNotMatch(html, /<script>|<script [^>]*>[^<]|\son[a-z]+=|style=|https?:\/\//i, `${page} has inline code or a foreign URL`);
    }
  });

  test('assets are served by exact name only', async () => {
    for (const ok of ['/console/assets/playground.js', '/console/vendor/uPlot.esm.js', '/console/vendor/eventsource-parser/stream.js', '/docs/assets/swagger-ui-dist/swagger-ui-bundle.js']) {
      assert.equal((await fetch(server.url + ok)).status, 200, ok);
    }
    for (const bad of ['/console/assets/..%2F..%2Fconfig.ts', '/console/assets/nope.js', '/console/vendor/package.json', '/docs/assets/swagger-ui-dist/index.html']) {
      assert.equal((await fetch(server.url + bad)).status, 404, bad);
    }
  });
});
