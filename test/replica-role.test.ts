// Roles and per-replica signals (issue 22 items 1 and 2): a serving replica has no database and no admin
// routes; /metrics carries views in flight, admission refusals and per-model latency; /readyz fails while draining.
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ADMIN_TOKEN, bearer } from './helpers/finetune.ts';
import { waitFor } from './helpers/wait.ts';
import { makeImage } from './helpers/images.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';

let tmp: string;

before(async () => {
  tmp = await mkdtemp(path.join(tmpdir(), 'fqtok-replica-'));
});

after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

/** The value of one series of the Prometheus text, 0 when it is absent. */
function series(text: string, name: string, labels: Record<string, string>): number {
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const labelText = line.slice(name.length + 1, line.indexOf('}'));
    if (wanted.every((w) => labelText.split(',').includes(w))) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return 0;
}

const encode = async (url: string, images: number, query = '') => {
  const form = new FormData();
  for (let i = 0; i < images; i++) form.append(`image${i}`, new Blob([new Uint8Array(await makeImage(64, 64, 'png', i))], { type: 'image/png' }), `${i}.png`);
  return fetch(`${url}/encode${query}`, { method: 'POST', body: form });
};

describe('FQ_ROLE=replica', () => {
  let replica: TestServer;
  const dataDir = () => path.join(tmp, 'replica-data');

  before(async () => {
    replica = await startTestServer({ FQ_ROLE: 'replica', FQ_DATA_DIR: dataDir(), FQ_ADMIN_TOKEN: ADMIN_TOKEN });
  });
  after(async () => {
    await replica?.close();
  });

  test('serves encode and the models list', async () => {
    const res = await encode(replica.url, 1);
    assert.equal(res.status, 200, await res.text());
    assert.equal((await fetch(`${replica.url}/models`)).status, 200);
    assert.equal((await fetch(`${replica.url}/readyz`)).status, 200);
  });

  test('admin routes are off and say where they are, even with the admin token', async () => {
    for (const [method, p] of [['GET', '/jobs'], ['POST', '/jobs/finetune'], ['GET', '/datasets'], ['DELETE', '/models/x/versions/1']] as const) {
      const res = await fetch(replica.url + p, { method, headers: bearer() });
      assert.equal(res.status, 404, `${method} ${p}`);
      assert.match(((await res.json()) as { detail: string }).detail, /served by the admin instance \(FQ_ROLE=admin\); this is a serving replica/);
    }
  });

  test('no database: nothing is written under FQ_DATA_DIR', async () => {
    assert.equal(replica.db, undefined);
    assert.equal(replica.jobs, undefined);
    await assert.rejects(readdir(dataDir()), { code: 'ENOENT' });
  });
});

describe('autoscaling signals and readiness', () => {
  let server: TestServer;
  const metrics = async () => (await fetch(`${server.url}/metrics`)).text();
  const model = () => server.registry.get().label;

  before(async () => {
    // Requests wait in the queue for company (up to 64 images, 5 s), so what is in flight can be seen.
    server = await startTestServer({
      FQ_ROLE: 'replica',
      FQ_DATA_DIR: path.join(tmp, 'signals-data'),
      FQ_MAX_BATCH: '64',
      FQ_BATCH_WAIT_MS: '5000',
      FQ_MAX_QUEUE: '4',
      FQ_MAX_IMAGES: '4',
    });
  });
  after(async () => {
    await server?.close();
  });

  test('views in flight, refusals by reason, per-model latency; /readyz 503 while draining, in-flight work finishes', async () => {
    const labels = { model: model(), operation: 'encode' };
    const start = await metrics(); // counters are per process: compare with what earlier tests left
    const count = (text: string, name: string, extra: Record<string, string> = {}) => series(text, name, { ...labels, ...extra }) - series(start, name, { ...labels, ...extra });
    const waiting = encode(server.url, 2);
    await waitFor('2 views in flight', async () => (series(await metrics(), 'fqtok_views_in_flight', labels) === 2 ? true : undefined), 20_000, 50);

    const overloaded = await encode(server.url, 3);
    assert.equal(overloaded.status, 503);
    const tooLarge = await encode(server.url, 1, '?augment=ten_crop');
    assert.equal(tooLarge.status, 413);
    const text = await metrics();
    assert.equal(count(text, 'fqtok_admission_refusals_total', { reason: 'overloaded' }), 1);
    assert.equal(count(text, 'fqtok_admission_refusals_total', { reason: 'too_large' }), 1);

    const closing = server.close();
    const ready = await server.app.request('/readyz');
    assert.equal(ready.status, 503);
    assert.match(((await ready.json()) as { detail: string }).detail, /shutting down/);
    const answered = await waiting;
    assert.equal(answered.status, 200, 'the request in flight when draining began is answered');
    await closing;

    const after = await (await server.app.request('/metrics')).text();
    assert.equal(series(after, 'fqtok_views_in_flight', labels), 0);
    assert.equal(count(after, 'fqtok_model_request_duration_seconds_count'), 1);
  });
});
