// Models and training weights from a Hugging Face Hub stand-in (a real HTTP server started here, with
// HF_ENDPOINT pointed at it; no network): `fqtok pull` into the Hub cache layout, resumed after a cut,
// refused on a checksum mismatch, offline from the cache; FQ_PULL at server start with /readyz saying
// what it waits for; a default-settings fine-tune on pulled training weights.
import assert from 'node:assert/strict';
import { spawn, execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, readFileSync, readlinkSync, readdirSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { ADMIN_TOKEN, bearer, makeDataset } from './helpers/finetune.ts';
import { PYTHON } from './helpers/python.ts';
import { waitFor } from './helpers/wait.ts';
import { startHubStandIn, type HubStandIn } from './helpers/hub-stand-in.ts';
import { makeImage } from './helpers/images.ts';
import { startServerProcess } from './helpers/server-process.ts';
import { ROOT, startTestServer, type TestServer } from './helpers/server.ts';

const REPO = 'fqgan-test/FQGAN';
const CHECKPOINT = 'fqgan_test_ds16.pt';
const SPEC = `hf://${REPO}/${CHECKPOINT}`;
const MODEL = 'fqgan-test-ds16'; // the name a pull gives fqgan_test_ds16.pt
const TOKEN = 'hf_test_token_0123456789';

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

let work: string;
let hub: HubStandIn;
let checkpoint: Buffer;
let vgg: Buffer;
let lpips: Buffer;
/** The Hub cache the first pulls fill; later tests read it offline. */
let hfHome: string;

before(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'fqtok-hub-'));
  const fixtures = path.join(work, 'fixtures');
  await promisify(execFile)(PYTHON, [path.join(ROOT, 'test/helpers/make_hub_fixtures.py'), fixtures], {
    env: { ...process.env, PYTHONPATH: `${path.join(ROOT, 'trainer')}:${path.join(ROOT, 'trainer/tests')}` },
    timeout: 120_000,
  });
  const read = (name: string) => readFileSync(path.join(fixtures, name));
  checkpoint = read('checkpoint.pt');
  vgg = read('vgg16.pth');
  lpips = read('lpips_vgg.pth');
  hub = await startHubStandIn(
    [
      // corrupt.pt differs from the checkpoint by a byte, so that it has a blob of its own
      { id: REPO, files: { [CHECKPOINT]: checkpoint, 'corrupt.pt': Buffer.concat([checkpoint, Buffer.from('x')]), 'config.json': Buffer.from('{}') } },
      { id: 'facebook/dinov2-small', files: { 'config.json': read('dinov2/config.json'), 'model.safetensors': read('dinov2/model.safetensors') } },
      { id: 'openai/clip-vit-base-patch16', files: { 'config.json': read('clip/config.json'), 'pytorch_model.bin': read('clip/pytorch_model.bin') } },
    ],
    { 'vgg16.pth': vgg, 'lpips_vgg.pth': lpips },
  );
  hub.requireToken(TOKEN);
  hub.corrupt('corrupt.pt');
  hfHome = path.join(work, 'hf-home');
});
after(async () => {
  await hub?.close();
  await rm(work, { recursive: true, force: true });
});

/** The Hugging Face environment of a test: the stand-in, its token, a cache; nothing inherited from this machine. */
function hubEnv(extra: Record<string, string> = {}): Record<string, string> {
  return { HF_ENDPOINT: hub.url, HF_HOME: hfHome, HF_TOKEN: TOKEN, TORCH_HOME: path.join(work, 'torch-home'), FQ_PYTHON: PYTHON, ...extra };
}

interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `fqtok ARGS` as a user runs it; killed (and failed) after 4 minutes. */
function fqtok(args: string[], env: Record<string, string>): Promise<CliRun> {
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(HF_|HUGGINGFACE_|TORCH_HOME|FQ_)/.test(k)));
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/cli.ts'), ...args], { cwd: ROOT, env: { ...inherited, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`fqtok ${args.join(' ')} did not finish within 4 minutes:\n${stderr}`));
    }, 240_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

const cacheOf = (home: string, repo: string) => path.join(home, 'hub', `models--${repo.replace('/', '--')}`);

async function encodeWith(url: string, model: string): Promise<Response> {
  const body = new Uint8Array(await makeImage(256, 256, 'png', 5));
  return fetch(`${url}/encode?model=${model}`, { method: 'POST', headers: { 'content-type': 'image/png' }, body });
}

async function served(url: string, model: string): Promise<true | undefined> {
  return (await fetch(`${url}/models/${model}`)).status === 200 ? true : undefined;
}

describe('fqtok pull', () => {
  let server: TestServer;
  let models: string;
  before(async () => {
    models = path.join(work, 'models-live');
    await mkdir(models);
    server = await startTestServer({ FQ_MODELS_DIR: models, FQ_MODELS_POLL_MS: '200' });
  });
  after(() => server?.close());

  test('an interrupted download resumes; the checkpoint is converted, installed, and served by a running server', async () => {
    hub.cutNext(CHECKPOINT, 1_000_000);
    const cut = await fqtok(['pull', SPEC], hubEnv({ FQ_MODELS_DIR: models }));
    assert.notEqual(cut.code, 0);
    const blob = path.join(cacheOf(hfHome, REPO), 'blobs', sha256(checkpoint));
    // What reached the disk before the connection dropped (at most the million bytes sent) is kept.
    const kept = statSync(`${blob}.incomplete`).size;
    assert.ok(kept > 0 && kept <= 1_000_000, String(kept));
    assert.match(cut.stderr, new RegExp(`stopped after ${kept} bytes.*run again to continue`));
    assert.equal(existsSync(path.join(models, MODEL)), false, 'nothing is installed from half a file');

    const done = await fqtok(['pull', SPEC], hubEnv({ FQ_MODELS_DIR: models }));
    assert.equal(done.code, 0, done.stderr);
    const result = JSON.parse(done.stdout) as Record<string, unknown>;
    const commit = hub.commit(REPO);
    assert.deepEqual(
      { ...result, dir: undefined },
      { kind: 'model', name: MODEL, dir: undefined, installed: true, repo: REPO, path: CHECKPOINT, revision: 'main', commit, sha256: sha256(checkpoint), fetched: checkpoint.length - kept, resumedFrom: kept },
    );
    const downloads = hub.requests.filter((r) => r.url.endsWith(`/resolve/${commit}/${CHECKPOINT}`));
    assert.deepEqual(downloads.map((r) => r.range), [undefined, `bytes=${kept}-`]);
    assert.ok(hub.requests.every((r) => r.authorization === `Bearer ${TOKEN}`), 'HF_TOKEN goes with every request to the Hub');

    // The Hub cache layout: blobs by sha256, the snapshot of the commit links to it, refs/main names the commit.
    const cache = cacheOf(hfHome, REPO);
    assert.equal(readFileSync(path.join(cache, 'refs', 'main'), 'utf8'), commit);
    const pointer = path.join(cache, 'snapshots', commit, CHECKPOINT);
    assert.ok(lstatSync(pointer).isSymbolicLink());
    assert.equal(readlinkSync(pointer), path.join('..', '..', 'blobs', sha256(checkpoint)));
    assert.equal(sha256(readFileSync(blob)), sha256(checkpoint));
    assert.equal(existsSync(`${blob}.incomplete`), false);

    const manifest = JSON.parse(await readFile(path.join(models, MODEL, 'manifest.json'), 'utf8'));
    assert.deepEqual(manifest.source.hub, { repo: REPO, path: CHECKPOINT, revision: 'main', commit, sha256: sha256(checkpoint), endpoint: hub.url });
    assert.ok(manifest.files['encoder.onnx'], 'the exporter listed the files it wrote');
    assert.deepEqual(readdirSync(models), [MODEL], 'no staging folder is left behind');

    await waitFor('the pulled model on the running server', () => served(server.url, MODEL), 30_000, 100);
    const encoded = await encodeWith(server.url, MODEL);
    assert.equal(encoded.status, 200);
    assert.equal(encoded.headers.get('x-fqtok-model'), `${MODEL}@1`);

    const again = await fqtok(['pull', SPEC], hubEnv({ FQ_MODELS_DIR: models }));
    assert.equal(again.code, 0, again.stderr);
    assert.equal((JSON.parse(again.stdout) as { installed: boolean }).installed, false, 'the same file is not converted twice');
    assert.equal(hub.requests.filter((r) => r.url.includes(`/resolve/`) && r.url.endsWith(CHECKPOINT)).length, 2, 'nor downloaded again');
  });

  test('a checksum mismatch installs nothing and keeps nothing', async () => {
    const run = await fqtok(['pull', `hf://${REPO}/corrupt.pt`, '--as', 'corrupt'], hubEnv({ FQ_MODELS_DIR: models }));
    assert.notEqual(run.code, 0);
    assert.match(run.stderr, /has sha256 [0-9a-f]{64}, expected [0-9a-f]{64}; it was removed and nothing was installed/);
    const expected = sha256(Buffer.concat([checkpoint, Buffer.from('x')]));
    const cache = cacheOf(hfHome, REPO);
    assert.equal(existsSync(path.join(cache, 'blobs', expected)), false);
    assert.equal(existsSync(path.join(cache, 'blobs', `${expected}.incomplete`)), false);
    assert.equal(existsSync(path.join(cache, 'snapshots', hub.commit(REPO), 'corrupt.pt')), false);
    assert.equal(existsSync(path.join(models, 'corrupt')), false);
    assert.equal(await served(server.url, 'corrupt'), undefined);
  });

  test('an unknown name or a bad hub id is refused with what is accepted', async () => {
    const run = await fqtok(['pull', 'fqgan-quadruple'], hubEnv({ FQ_MODELS_DIR: models }));
    assert.equal(run.code, 2);
    assert.match(run.stderr, /unknown 'fqgan-quadruple': give one of fqgan-triple-ds16, .*training-weights.*hf:\/\/owner\/repo/);
  });
});

describe('offline (HF_HUB_OFFLINE=1)', () => {
  test('the server pulls FQ_PULL from the cache alone and serves it; a file the cache lacks is a clear 503 reason', async () => {
    const models = path.join(work, 'models-offline');
    const before = hub.requests.length;
    const server = await startTestServer({
      ...hubEnv({ HF_HUB_OFFLINE: '1' }),
      FQ_MODELS_DIR: models,
      FQ_PULL: `${SPEC},hf://${REPO}/missing.pt`,
    });
    try {
      await waitFor('the model converted from the cache', () => served(server.url, MODEL), 120_000, 200);
      assert.equal((await encodeWith(server.url, MODEL)).status, 200);
      assert.equal(((await (await fetch(`${server.url}/models`)).json()) as { default: string }).default, MODEL, "FQ_PULL's first model is the default");
      const reason = await waitFor('the missing file in /readyz', async () => {
        const r = await fetch(`${server.url}/readyz`);
        const body = (await r.json()) as { detail?: string };
        return r.status === 503 && /failed/.test(body.detail ?? '') ? body.detail : undefined;
      }, 60_000, 200);
      assert.match(reason!, /HF_HUB_OFFLINE is set and fqgan-test\/FQGAN\/missing\.pt@main is not in the Hugging Face cache/);
      assert.equal(hub.requests.length, before, 'nothing was fetched');
    } finally {
      await server.close();
    }
    const run = await fqtok(['pull', `hf://${REPO}/missing.pt`], hubEnv({ HF_HUB_OFFLINE: '1', FQ_MODELS_DIR: models }));
    assert.notEqual(run.code, 0);
    assert.match(run.stderr, /HF_HUB_OFFLINE is set and .*missing\.pt@main is not in the Hugging Face cache .*pull it once with network access/);
  });
});

describe('FQ_PULL at start-up', () => {
  test('/readyz is 503 saying what it waits for until the model is in; progress is logged', async () => {
    const release = hub.hold(CHECKPOINT); // the download waits: the server cannot be ready before it
    const env = { ...hubEnv({ HF_HOME: path.join(work, 'hf-home-fresh') }), FQ_MODELS_DIR: path.join(work, 'models-startup'), FQ_DATA_DIR: path.join(work, 'data-startup'), FQ_PULL: SPEC, FQ_LOG_FORMAT: 'json' };
    const server = await startServerProcess(env);
    try {
      const waiting = await fetch(`${server.url}/readyz`);
      assert.equal(waiting.status, 503);
      assert.match(((await waiting.json()) as { detail: string }).detail, /not ready: (waiting to pull|pulling) fqgan-test-ds16/);
      release();
      await waitFor('readiness', async () => ((await fetch(`${server.url}/readyz`)).status === 200 ? true : undefined), 120_000, 200);
      assert.equal((await encodeWith(server.url, MODEL)).status, 200);
      const messages = server.logs().map((l) => String(l.msg));
      assert.ok(messages.some((m) => /^pulling fqgan-test-ds16: \d+%/.test(m)), messages.join('\n'));
      assert.ok(messages.includes('pulled and installed'));
    } finally {
      release();
      await server.close();
    }
  });
});

describe('training weights', () => {
  let server: TestServer;
  const torchHome = () => path.join(work, 'torch-home');
  before(async () => {
    const datasets = path.join(work, 'datasets');
    await makeDataset(path.join(datasets, 'six'), 6);
    server = await startTestServer({
      ...hubEnv(),
      FQ_MODELS_DIR: path.join(work, 'models-live'), // the model pulled above; its checkpoint is in the cache
      FQ_DATA_DIR: path.join(work, 'data-jobs'),
      FQ_DATASETS_DIR: datasets,
      FQ_ADMIN_TOKEN: ADMIN_TOKEN,
    });
  });
  after(() => server?.close());

  const job = (output: string) =>
    fetch(`${server.url}/jobs/finetune`, {
      method: 'POST',
      headers: { ...bearer(), 'content-type': 'application/json' },
      body: JSON.stringify({ base_model: MODEL, dataset: 'six', output_model: output }),
    });

  test('before the pull, a default job is refused naming the missing file once, and saying how to get it', async () => {
    const res = await job('early');
    assert.equal(res.status, 422);
    const problem = (await res.json()) as { detail: string; errors: { field: string; message: string }[] };
    const vgg16 = problem.errors.find((e) => e.field === 'weights.lpips_vgg');
    assert.ok(vgg16, JSON.stringify(problem));
    assert.match(vgg16.message, /vgg16\.pth.*fqtok pull training-weights/);
    assert.doesNotMatch(vgg16.message, /weights\.lpips_vgg/);
    assert.equal(problem.detail.split('weights.lpips_vgg').length - 1, 1, problem.detail);
  });

  test('`fqtok pull training-weights` fetches them into the caches, verified; a default job then runs on them', async () => {
    const run = await fqtok(['pull', 'training-weights'], hubEnv({
      FQ_VGG16_URL: `${hub.url}/files/vgg16.pth#sha256=${sha256(vgg)}`,
      FQ_LPIPS_VGG_URL: `${hub.url}/files/lpips_vgg.pth#sha256=${sha256(lpips)}`,
    }));
    assert.equal(run.code, 0, run.stderr);
    assert.ok(hub.requests.filter((r) => r.url.startsWith('/files/')).every((r) => !r.authorization), 'HF_TOKEN goes to the Hub only');
    const { weights } = JSON.parse(run.stdout) as { weights: { name: string; path: string; sha256: Record<string, string> }[] };
    const byName = Object.fromEntries(weights.map((w) => [w.name, w]));
    assert.equal(byName.vgg16!.path, path.join(torchHome(), 'hub', 'checkpoints', 'vgg16-397923af.pth'));
    assert.equal(byName.vgg16!.sha256['vgg16-397923af.pth'], sha256(vgg));
    assert.equal(byName['lpips-vgg-v0.1']!.path, path.join(torchHome(), 'hub', 'checkpoints', 'lpips_vgg_v0.1-a78928a0.pth'));
    const dino = byName['dinov2-small']!.path;
    assert.equal(dino, path.join(cacheOf(hfHome, 'facebook/dinov2-small'), 'snapshots', hub.commit('facebook/dinov2-small')));
    assert.ok(existsSync(path.join(dino, 'model.safetensors')));
    // The CLIP repository has no model.safetensors: its pytorch_model.bin is taken.
    assert.ok(existsSync(path.join(byName['clip-vit-base-patch16']!.path, 'pytorch_model.bin')));

    const res = await job('mine');
    const created = (await res.json()) as { id: string };
    assert.equal(res.status, 202, JSON.stringify(created));
    try {
      // The trainer loaded VGG16 + LPIPS and both teachers through its own loaders, then started.
      const started = await waitFor('the job to start training', async () => {
        const events = (await (await fetch(`${server.url}/jobs/${created.id}/events?limit=1000`, { headers: bearer() })).json()) as {
          data: { type: string; data: Record<string, unknown> }[];
        };
        const failed = events.data.find((e) => e.type === 'status' && e.data.status === 'failed');
        if (failed) assert.fail(`the job failed: ${JSON.stringify(failed.data)}`);
        return events.data.find((e) => e.type === 'started')?.data;
      }, 180_000, 500);
      // Six images: one held out for evaluation, a batch of the other five.
      assert.deepEqual([started.dataset, started.eval_images, started.batch_size], [5, 1, 5]);
    } finally {
      await fetch(`${server.url}/jobs/${created.id}/cancel`, { method: 'POST', headers: bearer() });
      await waitFor('the job to stop', async () => {
        const status = ((await (await fetch(`${server.url}/jobs/${created.id}`, { headers: bearer() })).json()) as { status: string }).status;
        return ['cancelled', 'failed', 'succeeded'].includes(status) ? status : undefined;
      }, 60_000, 250);
    }
  });
});
