// Issue 16, item 2: a full data disk and a read-only data directory, for real (a small tmpfs mounted by
// the test; CI runs as root). The service never exits on ENOSPC or EROFS, a write that fails is an error
// that surfaces (the job store raises on SQLITE_FULL), the job fails with the true cause in its status and
// its events, a new job is a 507 (full) or 503 (read-only), and inference keeps serving throughout.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, unlinkSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { openDatabase } from '../src/db/client.ts';
import { JobStore } from '../src/jobs/job-store.ts';
import { exportModel } from './helpers/export-model.ts';
import { ADMIN_TOKEN, bearer, CPU, makeDataset, tinyHyperparameters } from './helpers/finetune.ts';
import { waitFor } from './helpers/wait.ts';
import { makeImage } from './helpers/images.ts';
import { integrityCheck } from './helpers/integrity-check.ts';
import { startServerProcess, type ServerProcess } from './helpers/server-process.ts';

const skip = process.getuid?.() === 0 ? false : 'mounting a tmpfs needs root (CI runs as root): the disk-full and read-only tests did not run';

let tmp: string;
const mounts: string[] = [];

/** A fresh tmpfs of `size` (e.g. '48m') at a new folder; unmounted after the tests. */
function mountTmpfs(name: string, size: string): string {
  const dir = path.join(tmp, name);
  mkdirSync(dir, { recursive: true });
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir]);
  mounts.push(dir);
  return dir;
}

/** Writes zeros into `file` until the file system refuses with ENOSPC: the disk is full to the last block. */
function fillDisk(file: string): void {
  const fd = openSync(file, 'w');
  try {
    for (const chunk of [1 << 20, 1 << 12, 1 << 9]) {
      const zeros = Buffer.alloc(chunk);
      for (;;) {
        try {
          writeSync(fd, zeros);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
          break;
        }
      }
    }
  } finally {
    closeSync(fd);
  }
}

before(async () => {
  if (skip) return;
  tmp = mkdtempSync(path.join(tmpdir(), 'fqtok-disk-'));
  await exportModel(path.join(tmp, 'models', 'tiny'), { preset: 'test-16' });
  await makeDataset(path.join(tmp, 'datasets', 'photos'), 4);
});

after(() => {
  if (skip) return;
  for (const dir of mounts.reverse()) {
    try {
      execFileSync('umount', ['-l', dir]);
    } catch {
      /* already gone */
    }
  }
  rmSync(tmp, { recursive: true, force: true });
});

test('the job store raises when SQLite cannot commit on a full disk (it used to return the row as if saved)', { skip }, () => {
  const dir = mountTmpfs('store', '2m');
  const db = openDatabase(path.join(dir, 'fqtok.db'));
  try {
    const store = new JobStore(db);
    store.insertJob({ id: 'j1', status: 'queued', baseModel: 'm', baseVersion: 1, dataset: 'd', outputModel: 'o', spec: {}, requestHash: 'h', createdAt: new Date(), totalSteps: 10 });
    fillDisk(path.join(dir, 'filler'));
    const full = (err: unknown) => (err as { code?: string }).code === 'SQLITE_FULL';
    assert.throws(() => store.updateJob('j1', { step: 5 }), full);
    assert.throws(() => store.transition('j1', ['queued'], { status: 'running' }), full);
    assert.throws(() => {
      for (let i = 0; i < 1000; i++) store.addEvent('j1', 'progress', { step: i, pad: 'x'.repeat(4000) });
    }, full);
    assert.deepEqual([store.getJob('j1')!.status, store.getJob('j1')!.step], ['queued', 0], 'nothing was half-saved');
  } finally {
    db.$client.close();
  }
});

const json = (body: unknown) => ({ method: 'POST', headers: { ...bearer(), 'content-type': 'application/json' }, body: JSON.stringify(body) });
const jobRequest = (output: string, steps: number) => json({ base_model: 'tiny', dataset: 'photos', output_model: output, hyperparameters: tinyHyperparameters(steps), device: CPU });

function serviceEnv(dataDir: string): Record<string, string> {
  return {
    FQ_MODELS_DIR: path.join(tmp, 'models'),
    FQ_DATASETS_DIR: path.join(tmp, 'datasets'),
    FQ_DATA_DIR: dataDir,
    FQ_ADMIN_TOKEN: ADMIN_TOKEN,
    FQ_LOG_FORMAT: 'json',
  };
}

async function encodeOk(url: string, png: Buffer): Promise<void> {
  const res = await fetch(`${url}/encode?model=tiny`, { method: 'POST', headers: { 'content-type': 'image/png' }, body: new Uint8Array(png) });
  assert.equal(res.status, 200, await res.text());
}

test('the data disk fills during a job: the service stays up and serves, the job fails saying the disk is full, nothing is lost', { skip }, async () => {
  const dataDir = mountTmpfs('full', '64m');
  const png = await makeImage(256, 256);
  let server: ServerProcess | undefined;
  try {
    server = await startServerProcess(serviceEnv(dataDir));
    const url = server.url;
    const created = await fetch(`${url}/jobs/finetune`, jobRequest('filled', 10_000));
    const { id } = (await created.json()) as { id: string };
    assert.equal(created.status, 202);
    const job = async () => (await (await fetch(`${url}/jobs/${id}`, { headers: bearer() })).json()) as { status: string; error?: { message: string }; progress: { step: number } };
    await waitFor('a first checkpoint', async () => ((await job()).progress.step >= 2 ? true : undefined));

    const filler = path.join(dataDir, 'filler');
    fillDisk(filler);
    // Inference serves while the disk is full, until the job has failed and after.
    const failed = await waitFor(
      'the job to fail',
      async () => {
        await encodeOk(url, png);
        const j = await job();
        return j.status === 'failed' ? j : undefined;
      },
      180_000,
    );
    assert.match(failed.error!.message, /data directory \(FQ_DATA_DIR\) is full|No space left on device/);
    await encodeOk(url, png);
    assert.equal((await fetch(`${url}/healthz`)).status, 200);

    const refused = await fetch(`${url}/jobs/finetune`, jobRequest('refused', 5));
    const problem = (await refused.json()) as { detail: string };
    assert.equal(refused.status, 507, problem.detail);
    assert.match(problem.detail, /creating the job failed: the data directory \(FQ_DATA_DIR\) is full/);

    // Space comes back: what the full disk could not take is saved, and jobs are accepted again.
    unlinkSync(filler);
    const saved = await waitFor(
      'the failure to be saved with its cause',
      async () => {
        const events = (await (await fetch(`${url}/jobs/${id}/events?limit=1000`, { headers: bearer() })).json()) as { data: { type: string; data: { status?: string; message?: string } }[] };
        return events.data.find((e) => e.type === 'status' && e.data.status === 'failed');
      },
      60_000,
    );
    assert.match(saved.data.message!, /is full|No space left on device/);
    await waitFor('jobs to be accepted again', async () => {
      const res = await fetch(`${url}/jobs/finetune`, jobRequest('after', 1));
      await res.arrayBuffer();
      return res.status === 202 ? true : undefined;
    });
    await server.close();
    assert.doesNotMatch(server.log(), /uncaught|unhandled/i);
    server = undefined;

    const db = openDatabase(path.join(dataDir, 'fqtok.db'));
    try {
      assert.equal(integrityCheck(db), 'ok');
      const row = db.$client.prepare('select status, error from jobs where id = ?').get(id) as { status: string; error: string };
      assert.equal(row.status, 'failed');
      assert.match(row.error, /is full|No space left on device/);
    } finally {
      db.$client.close();
    }
  } finally {
    await server?.close();
  }
});

test('a read-only data directory: the service starts and serves, and jobs are a 503 that says why', { skip }, async () => {
  const dataDir = mountTmpfs('readonly', '16m');
  // A database from an earlier run, then the folder goes read-only.
  openDatabase(path.join(dataDir, 'fqtok.db')).$client.close();
  execFileSync('mount', ['-o', 'remount,ro', dataDir]);
  const server = await startServerProcess(serviceEnv(dataDir));
  try {
    await encodeOk(server.url, await makeImage(256, 256));
    for (const [route, init] of [
      ['/jobs/finetune', jobRequest('ro', 5)],
      ['/jobs', { method: 'GET', headers: bearer() }],
    ] as const) {
      const res = await fetch(`${server.url}${route}`, init);
      const problem = (await res.json()) as { detail: string };
      assert.equal(res.status, 503, `${init.method} ${route}: ${problem.detail}`);
      assert.match(problem.detail, /the data directory \(FQ_DATA_DIR\) is read-only/);
      assert.ok(res.headers.get('retry-after'));
    }
    assert.equal((await fetch(`${server.url}/healthz`)).status, 200);
  } finally {
    await server.close();
  }
});
