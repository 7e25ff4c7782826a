// Fine-tuning over HTTP with the real trainer on a tiny CPU recipe: auth, validation, a run to a served model, cancel.
import assert from 'node:assert/strict';
import { cp, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { makeImage } from './helpers/images.ts';
import { exportModel } from './helpers/export-model.ts';
import { ADMIN_TOKEN, bearer, CPU, makeDataset, tinyHyperparameters } from './helpers/finetune.ts';
import { ResponseValidator } from './helpers/openapi.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { waitFor } from './helpers/wait.ts';

let tmp: string;
let server: TestServer;
let validator: ResponseValidator;
let env: Record<string, string>;

interface Job {
  id: string;
  status: string;
  attempts: number;
  result: { model: string; version: number } | null;
  error: { message: string; field?: string } | null;
  progress: { step: number; total_steps: number };
  cancel_requested_at: string | null;
}
interface Problem {
  status: number;
  detail: string;
  errors?: { field: string; message: string }[];
}

async function api(method: string, route: string, urlPath: string, body?: unknown, headers: Record<string, string> = bearer()): Promise<Response> {
  const res = await fetch(server.url + urlPath, {
    method,
    headers: { ...headers, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    body: body !== undefined ? JSON.stringify(body) : undefined,
  });
  if (res.status !== 204) await validator.check(method, route, res); // a 204 has no body to check
  return res;
}

const request = (overrides: Record<string, unknown> = {}) => ({
  base_model: 'tiny',
  dataset: 'photos',
  output_model: 'mine',
  hyperparameters: tinyHyperparameters(2),
  device: CPU,
  ...overrides,
});

async function getJob(id: string): Promise<Job> {
  return (await (await api('GET', '/jobs/{id}', `/jobs/${id}`)).json()) as Job;
}

const waitForStatus = (id: string, ...statuses: string[]) =>
  waitFor(`job ${id} to be ${statuses.join('|')}`, async () => {
    const job = await getJob(id);
    return statuses.includes(job.status) ? job : undefined;
  });

before(async () => {
  tmp = await mkdtemp(path.join(tmpdir(), 'fqtok-jobs-'));
  await exportModel(path.join(tmp, 'models', 'tiny'), { preset: 'test-16' });
  // The same model with no checkpoint in its manifest: served, but not fine-tunable.
  await cp(path.join(tmp, 'models', 'tiny'), path.join(tmp, 'models', 'nockpt'), { recursive: true });
  const manifestFile = path.join(tmp, 'models', 'nockpt', 'manifest.json');
  const { files, ...manifest } = JSON.parse(await readFile(manifestFile, 'utf8')) as { files: Record<string, unknown> };
  delete files['checkpoint.pt']; // a consistent folder: its manifest lists only the files it holds
  await writeFile(manifestFile, JSON.stringify({ ...manifest, checkpoint: null, weights: null, files }));
  await rm(path.join(tmp, 'models', 'nockpt', 'checkpoint.pt'));

  const datasets = path.join(tmp, 'datasets');
  await makeDataset(path.join(datasets, 'photos'), 4);
  await makeDataset(path.join(tmp, 'outside'), 2);
  await symlink(path.join(tmp, 'outside'), path.join(datasets, 'escape'));
  await mkdir(path.join(datasets, 'no-images'));
  await writeFile(path.join(datasets, 'no-images', 'notes.txt'), 'not an image');
  await mkdir(path.join(datasets, 'broken'));
  await writeFile(path.join(datasets, 'broken', 'a.png'), 'definitely not a png');
  // Symlinks: to the root itself; inside a dataset, out of the root (seen by the service's quick look,
  // and one deeper than it looks, which the trainer's --check finds); and links that stay inside (allowed).
  await symlink(datasets, path.join(datasets, 'everything'));
  await makeDataset(path.join(datasets, 'leaky'), 4);
  await symlink(path.join(tmp, 'outside', 'img-0.png'), path.join(datasets, 'leaky', 'img-9.png'));
  await makeDataset(path.join(datasets, 'leaky-deep'), 8);
  await mkdir(path.join(datasets, 'leaky-deep', 'z'));
  await symlink(path.join(tmp, 'outside'), path.join(datasets, 'leaky-deep', 'z', 'more'));
  await symlink(path.join(datasets, 'photos'), path.join(datasets, 'alias'));
  await mkdir(path.join(datasets, 'linked'));
  for (const i of [0, 1, 2, 3]) await symlink(path.join(datasets, 'photos', `img-${i}.png`), path.join(datasets, 'linked', `img-${i}.png`));

  env = {
    FQ_MODELS_DIR: path.join(tmp, 'models'),
    FQ_DEFAULT_MODEL: 'tiny',
    FQ_DATA_DIR: path.join(tmp, 'data'),
    FQ_DATASETS_DIR: datasets,
    FQ_ADMIN_TOKEN: ADMIN_TOKEN,
    FQ_JOB_CANCEL_GRACE_MS: '20000',
  };
  server = await startTestServer(env);
  validator = new ResponseValidator(server.app);
});

after(async () => {
  await server?.close();
  await rm(tmp, { recursive: true, force: true });
});

describe('admin authentication', () => {
  test('without FQ_ADMIN_TOKEN the admin routes are off and say so', async () => {
    const plain = await startTestServer({ ...env, FQ_ADMIN_TOKEN: '', FQ_DATA_DIR: path.join(tmp, 'data-plain') }).catch(() => undefined);
    // An empty FQ_ADMIN_TOKEN is refused by the config (min 16 chars); unset is how the routes are switched off.
    assert.equal(plain, undefined);
    const { FQ_ADMIN_TOKEN: _, ...withoutToken } = env;
    const off = await startTestServer({ ...withoutToken, FQ_DATA_DIR: path.join(tmp, 'data-plain') });
    try {
      for (const [method, p] of [['GET', '/jobs'], ['POST', '/jobs/finetune'], ['GET', '/models/tiny/versions']] as const) {
        const res = await fetch(off.url + p, { method, headers: bearer() });
        assert.equal(res.status, 404, `${method} ${p}`);
        assert.match(((await res.json()) as Problem).detail, /admin routes are off.*FQ_ADMIN_TOKEN/);
      }
    } finally {
      await off.close();
    }
  });

  test('401 without a bearer token, 403 with a wrong one', async () => {
    const missing = await api('GET', '/jobs', '/jobs', undefined, {});
    assert.equal(missing.status, 401);
    assert.equal(missing.headers.get('www-authenticate'), 'Bearer');
    const wrong = await api('POST', '/jobs/finetune', '/jobs/finetune', request(), bearer('not-the-admin-token-at-all'));
    assert.equal(wrong.status, 403);
    const versions = await api('DELETE', '/models/{name}/versions/{version}', '/models/tiny/versions/1', undefined, bearer('wrong'));
    assert.equal(versions.status, 403);
  });
});

describe('validation before queueing', () => {
  const cases: [string, Record<string, unknown>, string, RegExp][] = [
    ['unknown base model', { base_model: 'nope' }, 'base_model', /unknown model 'nope'/],
    ['base model without a checkpoint', { base_model: 'nockpt' }, 'base_model', /no PyTorch checkpoint/],
    ['missing dataset folder', { dataset: 'missing' }, 'dataset', /not found/],
    ['dataset escaping with ..', { dataset: '../outside' }, 'dataset', /directly under the datasets root/],
    ['dataset escaping through a symlink', { dataset: 'escape' }, 'dataset', /outside the datasets root/],
    ['absolute dataset path', { dataset: path.join(tmp ?? '/tmp', 'outside') }, 'dataset', /directly under the datasets root/],
    ['the datasets root as "."', { dataset: '.' }, 'dataset', /directly under the datasets root/],
    ['the datasets root as ".."', { dataset: '..' }, 'dataset', /directly under the datasets root/],
    ['empty dataset name', { dataset: '' }, 'dataset', />=1 characters|directly under/],
    ['a nested dataset path', { dataset: 'photos/.' }, 'dataset', /directly under the datasets root/],
    ['a symlink to the datasets root', { dataset: 'everything' }, 'dataset', /the datasets root itself/],
    ['a dataset holding a symlink out of the root', { dataset: 'leaky' }, 'dataset', /'leaky\/img-9\.png' leads outside the datasets root/],
    ['a dataset holding a symlink out of the root, deeper than the quick look', { dataset: 'leaky-deep' }, 'dataset', /outside the datasets root .*leaky-deep\/z\/more/],
    // Links that stay inside the root pass both checks: only the (too large) batch is refused.
    ['a symlinked dataset inside the root', { dataset: 'alias', hyperparameters: tinyHyperparameters(2, { batch_size: 64 }) }, 'hyperparameters.batch_size', /more than the 4 training images/],
    ['a dataset of symlinks inside the root', { dataset: 'linked', hyperparameters: tinyHyperparameters(2, { batch_size: 64 }) }, 'hyperparameters.batch_size', /more than the 4 training images/],
    ['dataset without images', { dataset: 'no-images' }, 'dataset', /no image files/],
    ['dataset with undecodable images', { dataset: 'broken' }, 'dataset', /decodes/],
    ['bad output model name', { output_model: '../evil' }, 'output_model', /must match/],
    ['steps out of range', { hyperparameters: tinyHyperparameters(0) }, 'hyperparameters.steps', /must be > 0/],
    ['lr of the wrong type', { hyperparameters: tinyHyperparameters(2, { lr: 'fast' }) }, 'hyperparameters.lr', /finite number/],
    ['unknown hyperparameter', { hyperparameters: tinyHyperparameters(2, { warp_speed: 9 }) }, 'hyperparameters.warp_speed', /unknown field/],
    ['batch larger than the dataset', { hyperparameters: tinyHyperparameters(2, { batch_size: 64 }) }, 'hyperparameters.batch_size', /more than the 4 training images/],
    ['perceptual loss without LPIPS weights', { hyperparameters: tinyHyperparameters(2, { perceptual_weight: 1 }) }, 'weights.lpips_vgg', /vgg16\.pth/],
    ['semantic loss without teacher weights', { hyperparameters: tinyHyperparameters(2, { semantic_weight: 0.5 }) }, 'weights.clip', /not found/],
    ['bad device', { device: { device: 'tpu' } }, 'device.device', /must be one of/],
    ['unknown top-level field', { colour: 'blue' }, 'colour', /Unrecognized key/i],
    ['missing output model', { output_model: undefined }, 'output_model', /expected string/i],
  ];
  for (const [name, overrides, field, message] of cases) {
    test(`${name}: 422 naming ${field}`, async () => {
      const res = await api('POST', '/jobs/finetune', '/jobs/finetune', request(overrides));
      const body = (await res.json()) as Problem;
      assert.equal(res.status, 422, body.detail);
      const entry = body.errors?.find((e) => e.field === field);
      assert.ok(entry, `no error for ${field} in ${JSON.stringify(body.errors)}`);
      assert.match(entry.message, message);
      assert.ok(!JSON.stringify(body).includes(path.join(tmp, 'datasets')), 'server paths of datasets are not echoed');
    });
  }

  test('a refused request leaves no job behind', async () => {
    const res = await api('GET', '/jobs', '/jobs');
    assert.deepEqual(((await res.json()) as { data: Job[] }).data, []);
  });
});

async function readSse(res: Response, timeoutMs = 150_000): Promise<{ id: string; event: string; data: any }[]> {
  const events: { id: string; event: string; data: any }[] = [];
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  const deadline = setTimeout(() => reader.cancel(), timeoutMs);
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end: number;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const field = (name: string) => block.split('\n').find((l) => l.startsWith(`${name}:`))?.slice(name.length + 1).trim();
      if (field('event')) events.push({ id: field('id')!, event: field('event')!, data: JSON.parse(field('data')!) });
    }
  }
  clearTimeout(deadline);
  return events;
}

describe('a fine-tuning run', () => {
  const headers = { ...bearer(), 'idempotency-key': 'run-1' };
  let created: Response;
  let job: Job;

  // The run every test below looks at, started here so that each of them also runs alone.
  before(async () => {
    created = await api('POST', '/jobs/finetune', '/jobs/finetune', request({ hyperparameters: tinyHyperparameters(3) }), headers);
    job = (await created.clone().json()) as Job;
  });

  test('202 with Location; an Idempotency-Key retry answers with the same job', async () => {
    const res = created;
    assert.equal(res.status, 202, JSON.stringify(job));
    assert.equal(res.headers.get('location'), `/jobs/${job.id}`);
    assert.ok(['queued', 'running'].includes(job.status));
    assert.equal(job.progress.total_steps, 3);

    const retry = await api('POST', '/jobs/finetune', '/jobs/finetune', request({ hyperparameters: tinyHyperparameters(3) }), headers);
    assert.equal(retry.status, 202);
    assert.equal(((await retry.json()) as Job).id, job.id);
    assert.equal(retry.headers.get('idempotent-replayed'), 'true');

    const other = await api('POST', '/jobs/finetune', '/jobs/finetune', request({ hyperparameters: tinyHyperparameters(4) }), headers);
    assert.equal(other.status, 422);
    assert.equal(((await other.json()) as Problem).errors?.[0]?.field, 'Idempotency-Key');
  });

  test('the SSE stream carries the run to its end; resuming with Last-Event-ID skips what was seen', async () => {
    const res = await fetch(`${server.url}/jobs/${job.id}/events`, { headers: { ...bearer(), accept: 'text/event-stream' } });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /text\/event-stream/);
    const events = await readSse(res);
    const types = events.map((e) => e.event);
    for (const t of ['queued', 'started', 'progress', 'checkpoint', 'exported', 'finished']) assert.ok(types.includes(t), `${t} in ${types}`);
    assert.deepEqual(events.at(-1)!.data.data, { status: 'succeeded', model: 'mine', version: 1 });
    const ids = events.map((e) => Number(e.id));
    assert.deepEqual(ids, [...ids].sort((a, b) => a - b));

    const resumed = await readSse(await fetch(`${server.url}/jobs/${job.id}/events`, {
      headers: { ...bearer(), accept: 'text/event-stream', 'last-event-id': String(ids[2]) },
    }));
    assert.deepEqual(resumed.map((e) => Number(e.id)), ids.slice(3));
  });

  test('succeeded: the result is a served model version that encodes at once', async () => {
    const done = await waitForStatus(job.id, 'succeeded', 'failed', 'cancelled');
    assert.equal(done.status, 'succeeded', JSON.stringify(done.error));
    assert.deepEqual(done.result, { model: 'mine', version: 1 });
    assert.equal(done.progress.step, 3);

    const png = new Uint8Array(await makeImage(256, 256));
    const encoded = await fetch(`${server.url}/encode?model=mine&version=1`, { method: 'POST', body: png, headers: { 'content-type': 'image/png' } });
    const body = (await encoded.json()) as { model: string; version: number; codebooks: string[] };
    assert.equal(encoded.status, 200, JSON.stringify(body));
    assert.equal(body.model, 'mine');
    assert.equal(body.version, 1);
    assert.deepEqual(body.codebooks, ['vis', 'sem_mid', 'sem_high']);

    const versions = (await (await api('GET', '/models/{name}/versions', '/models/mine/versions')).json()) as { data: { version: number; source: string; job_id: string }[] };
    assert.deepEqual(versions.data.map((v) => [v.version, v.source, v.job_id]), [[1, 'fine-tuned', job.id]]);
  });

  test('the JSON event page, metrics and checkpoints', async () => {
    await waitForStatus(job.id, 'succeeded', 'failed', 'cancelled');
    const page = (await (await api('GET', '/jobs/{id}/events', `/jobs/${job.id}/events?limit=2`)).json()) as { data: { id: number }[]; has_more: boolean; next_cursor: number };
    assert.equal(page.data.length, 2);
    assert.equal(page.has_more, true);
    const next = (await (await api('GET', '/jobs/{id}/events', `/jobs/${job.id}/events?after=${page.next_cursor}&limit=1`)).json()) as { data: { id: number }[] };
    assert.ok(next.data[0]!.id > page.data[1]!.id);

    const metrics = (await (await api('GET', '/jobs/{id}/metrics', `/jobs/${job.id}/metrics`)).json()) as { steps: { step: number; losses: Record<string, number> }[] };
    assert.deepEqual(metrics.steps.map((s) => s.step), [1, 2, 3]);
    assert.ok(metrics.steps.every((s) => typeof s.losses.rec === 'number'));

    const checkpoints = (await (await api('GET', '/jobs/{id}/checkpoints', `/jobs/${job.id}/checkpoints`)).json()) as { data: { step: number; file: string; available: boolean }[] };
    assert.deepEqual(checkpoints.data.map((k) => [k.step, k.file]), [[1, '0000001.pt'], [2, '0000002.pt'], [3, '0000003.pt']]);
    assert.deepEqual(checkpoints.data.map((k) => k.available), [false, true, true]); // keep_checkpoints 2
  });

  test('metrics come in pages of events, oldest first, with a cursor to the next page', async () => {
    type MetricsPage = { steps: { step: number }[]; evals: unknown[]; has_more: boolean; next_cursor: number | null };
    const metrics = async (query: string) => (await (await api('GET', '/jobs/{id}/metrics', `/jobs/${job.id}/metrics${query}`)).json()) as MetricsPage;
    await waitForStatus(job.id, 'succeeded', 'failed', 'cancelled');
    const whole = await metrics('');
    assert.deepEqual([whole.has_more, whole.next_cursor], [false, null]);

    const steps: number[] = [];
    const cursors: number[] = [];
    for (let page = await metrics('?limit=1'); ; page = await metrics(`?limit=1&after=${cursors.at(-1)}`)) {
      assert.equal(page.steps.length + page.evals.length, 1, JSON.stringify(page));
      steps.push(...page.steps.map((s) => s.step));
      if (!page.has_more) {
        assert.equal(page.next_cursor, null);
        break;
      }
      assert.ok(cursors.length < 10, 'the pages end');
      cursors.push(page.next_cursor!);
    }
    assert.deepEqual(steps, [1, 2, 3]); // no eval events in this recipe: one progress event per page
    assert.equal(cursors.length, 2);
    assert.ok(cursors[0]! < cursors[1]!);

    assert.equal((await api('GET', '/jobs/{id}/metrics', `/jobs/${job.id}/metrics?limit=10001`)).status, 400);
  });

  test('a fine-tuned model can be fine-tuned again (its version carries its checkpoint); versions: a shipped one or the default cannot be deleted, a fine-tuned one can, and stops serving', async () => {
    assert.equal((await waitForStatus(job.id, 'succeeded', 'failed', 'cancelled')).status, 'succeeded');
    const res = await api('POST', '/jobs/finetune', '/jobs/finetune', request({ base_model: 'mine', output_model: 'tiny', hyperparameters: tinyHyperparameters(1) }));
    const again = (await res.json()) as Job;
    assert.equal(res.status, 202, JSON.stringify(again));
    const done = await waitForStatus(again.id, 'succeeded', 'failed');
    assert.equal(done.status, 'succeeded', JSON.stringify(done.error));
    assert.deepEqual(done.result, { model: 'tiny', version: 2 }, 'a shipped name continues at version 2');

    assert.equal((await api('DELETE', '/models/{name}/versions/{version}', '/models/tiny/versions/1')).status, 409);
    assert.equal((await api('DELETE', '/models/{name}/versions/{version}', '/models/tiny/versions/2')).status, 409); // the default serves it
    assert.equal((await api('DELETE', '/models/{name}/versions/{version}', '/models/mine/versions/7')).status, 404);
    assert.equal((await api('DELETE', '/models/{name}/versions/{version}', '/models/mine/versions/1')).status, 204);
    const gone = await fetch(`${server.url}/encode?model=mine`, { method: 'POST', body: new Uint8Array(await makeImage(64, 64)), headers: { 'content-type': 'image/png' } });
    assert.equal(gone.status, 404);
  });
});

describe('cancel', () => {
  test('a running job stops on cancel; cancelling again is a conflict', async () => {
    const res = await api('POST', '/jobs/finetune', '/jobs/finetune', request({ output_model: 'cancelled', hyperparameters: tinyHyperparameters(500, { checkpoint_every: 0 }) }));
    const job = (await res.json()) as Job;
    assert.equal(res.status, 202);
    await waitFor('a progress step', async () => ((await getJob(job.id)).progress.step >= 1 ? true : undefined));
    const cancel = await api('POST', '/jobs/{id}/cancel', `/jobs/${job.id}/cancel`);
    assert.equal(cancel.status, 200);
    assert.ok(((await cancel.json()) as Job).cancel_requested_at);
    const ended = await waitForStatus(job.id, 'cancelled', 'failed', 'succeeded');
    assert.equal(ended.status, 'cancelled');
    assert.ok(ended.progress.step < 500);
    const events = (await (await api('GET', '/jobs/{id}/events', `/jobs/${job.id}/events?limit=1000`)).json()) as { data: { type: string }[] };
    assert.ok(events.data.some((e) => e.type === 'cancelled'), 'the trainer saved a checkpoint and said so');
    assert.equal((await api('POST', '/jobs/{id}/cancel', `/jobs/${job.id}/cancel`)).status, 409);
  });

  test('a queued job is cancelled at once', async () => {
    const running = (await (await api('POST', '/jobs/finetune', '/jobs/finetune', request({ output_model: 'long', hyperparameters: tinyHyperparameters(500) }))).json()) as Job;
    const queued = (await (await api('POST', '/jobs/finetune', '/jobs/finetune', request({ output_model: 'queued' }))).json()) as Job;
    assert.equal(queued.status, 'queued', 'FQ_JOB_CONCURRENCY is 1');
    const res = await api('POST', '/jobs/{id}/cancel', `/jobs/${queued.id}/cancel`);
    assert.equal(((await res.json()) as Job).status, 'cancelled');
    await api('POST', '/jobs/{id}/cancel', `/jobs/${running.id}/cancel`);
    await waitForStatus(running.id, 'cancelled');
  });

  test('list: filter by status, newest first, cursor pagination', async () => {
    // Jobs of its own: one that ends and one cancelled while queued behind it (FQ_JOB_CONCURRENCY is 1).
    const first = (await (await api('POST', '/jobs/finetune', '/jobs/finetune', request({ output_model: 'listed', hyperparameters: tinyHyperparameters(1) }))).json()) as Job;
    const second = (await (await api('POST', '/jobs/finetune', '/jobs/finetune', request({ output_model: 'never' }))).json()) as Job;
    await api('POST', '/jobs/{id}/cancel', `/jobs/${second.id}/cancel`);
    await waitForStatus(first.id, 'succeeded', 'failed', 'cancelled');
    const all = (await (await api('GET', '/jobs', '/jobs?limit=100')).json()) as { data: Job[] };
    assert.ok(all.data.findIndex((j) => j.id === second.id) < all.data.findIndex((j) => j.id === first.id), 'newest first');
    const cancelled = (await (await api('GET', '/jobs', '/jobs?status=cancelled')).json()) as { data: Job[] };
    assert.ok(cancelled.data.some((j) => j.id === second.id));
    assert.deepEqual(cancelled.data.map((j) => j.id), all.data.filter((j) => j.status === 'cancelled').map((j) => j.id));
    const page1 = (await (await api('GET', '/jobs', '/jobs?limit=1')).json()) as { data: Job[]; has_more: boolean; next_cursor: string };
    const page2 = (await (await api('GET', '/jobs', `/jobs?limit=100&after=${page1.next_cursor}`)).json()) as { data: Job[] };
    assert.equal(page1.has_more, true);
    assert.deepEqual([...page1.data, ...page2.data].map((j) => j.id), all.data.map((j) => j.id));
    assert.equal((await api('GET', '/jobs/{id}', '/jobs/ftjob-nope')).status, 404);
  });
});
