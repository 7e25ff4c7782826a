// Publishing fine-tuned versions (issue 16 items 3 and 5): numbers reserved before files, atomic folders, the shipped-name rule, no empty folders left.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { cp, mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { JobStore } from '../src/jobs/job-store.ts';
import { jobPaths } from '../src/jobs/layout.ts';
import { publishJobModel } from '../src/jobs/publish.ts';
import { ADMIN_TOKEN, bearer, CPU, makeDataset, tinyHyperparameters } from './helpers/finetune.ts';
import { exportModel } from './helpers/export-model.ts';
import { waitFor } from './helpers/wait.ts';
import { makeImage } from './helpers/images.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';

let tmp: string;
let models: string;
let server: TestServer;

interface Job {
  id: string;
  status: string;
  result: { model: string; version: number } | null;
  error: { message: string } | null;
}

const post = (urlPath: string, body: unknown) =>
  fetch(server.url + urlPath, { method: 'POST', headers: { ...bearer(), 'content-type': 'application/json' }, body: JSON.stringify(body) });
const getJob = async (id: string) => (await (await fetch(`${server.url}/jobs/${id}`, { headers: bearer() })).json()) as Job;
const finished = (id: string) =>
  waitFor(`job ${id} to end`, async () => {
    const job = await getJob(id);
    return ['succeeded', 'failed', 'cancelled'].includes(job.status) ? job : undefined;
  }, 240_000);
const sha256 = async (file: string) => createHash('sha256').update(await readFile(file)).digest('hex');
const exists = (p: string) => stat(p).then(() => true, () => false);

const request = (overrides: Record<string, unknown> = {}) => ({
  base_model: 'tiny',
  dataset: 'photos',
  output_model: 'mine',
  hyperparameters: tinyHyperparameters(2),
  device: CPU,
  ...overrides,
});

before(async () => {
  tmp = await mkdtemp(path.join(tmpdir(), 'fqtok-publish-'));
  models = path.join(tmp, 'models');
  await exportModel(path.join(models, 'tiny'), { preset: 'test-16' });
  await makeDataset(path.join(tmp, 'datasets', 'photos'), 4);
  server = await startTestServer({
    FQ_MODELS_DIR: models,
    FQ_DEFAULT_MODEL: 'tiny',
    FQ_DATA_DIR: path.join(tmp, 'data'),
    FQ_DATASETS_DIR: path.join(tmp, 'datasets'),
    FQ_ADMIN_TOKEN: ADMIN_TOKEN,
    FQ_JOB_CONCURRENCY: '2',
  });
});

after(async () => {
  await server?.close();
  await rm(tmp, { recursive: true, force: true });
});

describe('the shipped-name rule', () => {
  test('a job may not publish under the name of a model of the models folder: 422 naming output_model', async () => {
    const res = await post('/jobs/finetune', request({ output_model: 'tiny' }));
    const body = (await res.json()) as { errors?: { field: string; message: string }[] };
    assert.equal(res.status, 422, JSON.stringify(body));
    const entry = body.errors?.find((e) => e.field === 'output_model');
    assert.match(entry?.message ?? '', /'tiny' is a model of the models folder/);
  });
});

describe('two jobs with one output_model finishing together', () => {
  let jobs: Job[];

  test('both succeed, with versions 1 and 2', async () => {
    const created = await Promise.all([post('/jobs/finetune', request()), post('/jobs/finetune', request())]);
    const ids = await Promise.all(created.map(async (r) => ((await r.json()) as Job).id));
    jobs = await Promise.all(ids.map(finished));
    for (const job of jobs) assert.equal(job.status, 'succeeded', JSON.stringify(job.error));
    assert.deepEqual(jobs.map((j) => j.result!.version).sort(), [1, 2]);
  });

  test("each version's files are its own job's, complete, in models/<name>/<version>/, and both are served", async () => {
    for (const job of jobs) {
      const dir = path.join(models, 'mine', String(job.result!.version));
      const manifest = JSON.parse(await readFile(path.join(dir, 'manifest.json'), 'utf8')) as { checkpoint: string };
      assert.equal(manifest.checkpoint, 'checkpoint.pt');
      const own = path.join(jobPaths(path.join(tmp, 'data', 'jobs'), job.id).checkpoints, '0000002.pt');
      assert.equal(await sha256(path.join(dir, 'checkpoint.pt')), await sha256(own), `version ${job.result!.version} holds job ${job.id}'s checkpoint`);
      const png = new Uint8Array(await makeImage(64, 64));
      const res = await fetch(`${server.url}/encode?model=mine&version=${job.result!.version}`, { method: 'POST', body: png, headers: { 'content-type': 'image/png' } });
      assert.equal(res.status, 200, await res.text());
    }
    assert.deepEqual((await readdir(path.join(models, 'mine'))).sort(), ['1', '2'], 'no staging folder is left');
  });

  test('deleting the last version removes the model folder', async () => {
    assert.ok(await exists(path.join(models, 'mine')));
    for (const version of [1, 2]) {
      const res = await fetch(`${server.url}/models/mine/versions/${version}`, { method: 'DELETE', headers: bearer() });
      assert.equal(res.status, 204, await res.text());
      assert.equal(await exists(path.join(models, 'mine', String(version))), false);
    }
    assert.equal(await exists(path.join(models, 'mine')), false, 'models/mine is gone with its last version');
  });
});

describe('publishing in the same instant', () => {
  test('two publishes started together reserve different numbers and keep both sets of files', async () => {
    // Through the publishing code itself, so that the two are certain to overlap: each awaits file copies
    // and a model load between taking its number and recording it.
    const store = new JobStore(server.db!);
    const exported = path.join(tmp, 'exported');
    await exportModel(exported, { preset: 'test-16' });
    const rows = ['a', 'b'].map((tag) =>
      store.insertJob({
        id: `ftjob-same-instant-${tag}`,
        status: 'running',
        baseModel: 'tiny',
        baseVersion: 1,
        dataset: 'photos',
        outputModel: 'twins',
        spec: {},
        createdAt: new Date(),
        totalSteps: 1,
      }),
    );
    const copies = await Promise.all(
      rows.map(async (row) => {
        const dir = path.join(tmp, `exported-${row.id}`);
        await cp(exported, dir, { recursive: true });
        return dir;
      }),
    );
    const published = await Promise.all(rows.map((row, i) => publishJobModel({ store, registry: server.registry, modelsDir: models }, row, copies[i]!)));
    assert.deepEqual(published.map((r) => [r.status, r.resultVersion]).sort(), [['succeeded', 1], ['succeeded', 2]]);
    for (const version of [1, 2]) {
      assert.ok(await exists(path.join(models, 'twins', String(version), 'encoder.onnx')), `version ${version}'s files are there`);
      assert.equal(server.registry.get('twins', version).model.dir, path.join(models, 'twins', String(version)));
    }
  });
});
