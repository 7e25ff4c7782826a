// Crash recovery: kill -9 the service during a job; the trainer does not outlive it, and the next start resumes the job.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { openDatabase } from '../src/db/client.ts';
import { integrityCheck } from './helpers/integrity-check.ts';
import { bearer, ADMIN_TOKEN, CPU, exportTinyModel, makeDataset, tinyHyperparameters, waitFor } from './helpers/finetune.ts';
import { ROOT } from './helpers/server.ts';

let tmp: string;
let service: ChildProcess | undefined;
let url: string;

const freePort = () =>
  new Promise<number>((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });

async function startService(): Promise<void> {
  const port = await freePort();
  url = `http://127.0.0.1:${port}`;
  service = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    cwd: ROOT,
    stdio: 'ignore',
    env: {
      ...process.env,
      FQ_PORT: String(port),
      FQ_HOST: '127.0.0.1',
      FQ_MODELS_DIR: path.join(tmp, 'models'),
      FQ_DATA_DIR: path.join(tmp, 'data'),
      FQ_DATASETS_DIR: path.join(tmp, 'datasets'),
      FQ_ADMIN_TOKEN: ADMIN_TOKEN,
      FQ_PREPROCESS_THREADS: '1',
      FQ_LOG_LEVEL: 'silent',
    },
  });
  await waitFor('the service to listen', () => fetch(`${url}/jobs`, { headers: bearer() }).then((r) => (r.ok ? true : undefined), () => undefined), 60_000);
}

const job = (id: string) => fetch(`${url}/jobs/${id}`, { headers: bearer() }).then((r) => r.json() as Promise<{ status: string; attempts: number; error: unknown; result: unknown; progress: { step: number } }>);

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

before(async () => {
  tmp = await mkdtemp(path.join(tmpdir(), 'fqtok-recovery-'));
  await exportTinyModel(path.join(tmp, 'models', 'tiny'));
  await makeDataset(path.join(tmp, 'datasets', 'photos'), 4);
});

after(async () => {
  service?.kill('SIGKILL');
  await rm(tmp, { recursive: true, force: true });
});

test('after kill -9 during a job: no orphaned trainer, the job resumes from its checkpoint and succeeds, the database is intact', async () => {
  await startService();
  const res = await fetch(`${url}/jobs/finetune`, {
    method: 'POST',
    headers: { ...bearer(), 'content-type': 'application/json' },
    body: JSON.stringify({ base_model: 'tiny', dataset: 'photos', output_model: 'recovered', hyperparameters: tinyHyperparameters(6), device: CPU }),
  });
  const { id } = (await res.json()) as { id: string };
  assert.equal(res.status, 202);
  await waitFor('a checkpoint', async () => ((await job(id)).progress.step >= 2 ? true : undefined));

  const db = openDatabase(path.join(tmp, 'data', 'fqtok.db'));
  const pid = db.$client.prepare('select pid from jobs where id = ?').pluck().get(id) as number;
  db.$client.close();
  assert.ok(pid && alive(pid), 'the trainer runs');

  service!.kill('SIGKILL');
  await new Promise((r) => service!.once('exit', r));
  await waitFor('the trainer to stop after its parent died', async () => (alive(pid) ? undefined : true), 30_000);

  await startService();
  const resumed = await job(id);
  assert.notEqual(resumed.status, 'failed', JSON.stringify(resumed.error));
  const done = await waitFor('the resumed job to end', async () => {
    const j = await job(id);
    return ['succeeded', 'failed', 'cancelled'].includes(j.status) ? j : undefined;
  });
  assert.equal(done.status, 'succeeded', JSON.stringify(done.error));
  assert.equal(done.attempts, 2);
  assert.deepEqual(done.result, { model: 'recovered', version: 1 });
  const events = (await (await fetch(`${url}/jobs/${id}/events?limit=1000`, { headers: bearer() })).json()) as { data: { type: string; data: { step?: number } }[] };
  const recovered = events.data.find((e) => e.type === 'recovered');
  assert.ok(recovered && (recovered.data.step ?? 0) >= 2, 'resumed from a checkpoint, not from step 0');

  service!.kill('SIGTERM');
  await new Promise((r) => service!.once('exit', r));
  service = undefined;
  const check = openDatabase(path.join(tmp, 'data', 'fqtok.db'));
  assert.equal(integrityCheck(check), 'ok');
  check.$client.close();
});

test('a job interrupted before any checkpoint is failed with the reason', async () => {
  await startService();
  const res = await fetch(`${url}/jobs/finetune`, {
    method: 'POST',
    headers: { ...bearer(), 'content-type': 'application/json' },
    body: JSON.stringify({ base_model: 'tiny', dataset: 'photos', output_model: 'lost', hyperparameters: tinyHyperparameters(50, { checkpoint_every: 0 }), device: CPU }),
  });
  const { id } = (await res.json()) as { id: string };
  await waitFor('the job to run', async () => ((await job(id)).status === 'running' ? true : undefined));
  service!.kill('SIGKILL');
  await new Promise((r) => service!.once('exit', r));
  // Before the trainer got far enough to save anything on SIGTERM: its output folder is removed.
  await rm(path.join(tmp, 'data', 'jobs', id, 'output', 'checkpoints'), { recursive: true, force: true });
  await new Promise((r) => setTimeout(r, 3000));
  await rm(path.join(tmp, 'data', 'jobs', id, 'output', 'checkpoints'), { recursive: true, force: true });

  await startService();
  const failed = await job(id);
  assert.equal(failed.status, 'failed');
  assert.match(JSON.stringify(failed.error), /before the trainer saved a checkpoint/);
  service!.kill('SIGTERM');
  await new Promise((r) => service!.once('exit', r));
  service = undefined;
});
