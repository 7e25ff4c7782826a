// No trainer outlives the service, and a job survives the service's death: however the service dies, the
// trainer and its DataLoader workers are gone within 10 s; at the next start a job resumes from its last
// checkpoint, or fails with the reason when it had none.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, afterEach, before, test } from 'node:test';
import { openDatabase } from '../src/db/client.ts';
import { exportModel } from './helpers/export-model.ts';
import { ADMIN_TOKEN, bearer, CPU, makeDataset, tinyHyperparameters } from './helpers/finetune.ts';
import { integrityCheck } from './helpers/integrity-check.ts';
import { killSession, sessionMembers, waitUntilSessionGone } from './helpers/processes.ts';
import { startServerProcess, type ServerProcess } from './helpers/server-process.ts';
import { alive, waitFor } from './helpers/wait.ts';

const GONE_WITHIN_MS = 10_000; // the promise made in docs/fine-tuning.md
const WORKERS = 4; // the trainer's default num_workers, spelled out so the test says what it covers

interface Job {
  status: string;
  attempts: number;
  error: unknown;
  result: unknown;
  progress: { step: number };
}

let tmp: string;
let service: ServerProcess | undefined;
let trainerSid: number | undefined;

/** The real service in a process group of its own (as a process manager would run it), on a data folder kept across restarts. */
async function startService(dataDir: string): Promise<ServerProcess> {
  service = await startServerProcess(
    {
      FQ_MODELS_DIR: path.join(tmp, 'models'),
      FQ_DATA_DIR: dataDir,
      FQ_DATASETS_DIR: path.join(tmp, 'datasets'),
      FQ_ADMIN_TOKEN: ADMIN_TOKEN,
    },
    { detached: true },
  );
  return service;
}

const getJob = async (url: string, id: string) => (await (await fetch(`${url}/jobs/${id}`, { headers: bearer() })).json()) as Job;

async function startJob(url: string, body: Record<string, unknown>): Promise<string> {
  const res = await fetch(`${url}/jobs/finetune`, { method: 'POST', headers: { ...bearer(), 'content-type': 'application/json' }, body: JSON.stringify({ base_model: 'tiny', dataset: 'photos', ...body }) });
  const { id } = (await res.json()) as { id: string };
  assert.equal(res.status, 202);
  return id;
}

/** The trainer's pid, as the service recorded it; the trainer leads a session of its own, which holds its DataLoader workers. */
function trainerOf(dataDir: string, id: string): number {
  const db = openDatabase(path.join(dataDir, 'fqtok.db'));
  const pid = db.$client.prepare('select pid from jobs where id = ?').pluck().get(id) as number;
  db.$client.close();
  trainerSid = pid;
  return pid;
}

before(async () => {
  tmp = await mkdtemp(path.join(tmpdir(), 'fqtok-recovery-'));
  await exportModel(path.join(tmp, 'models', 'tiny'), { preset: 'test-16' });
  await makeDataset(path.join(tmp, 'datasets', 'photos'), 8);
});

afterEach(async () => {
  if (service) killSession(service.pid); // detached: the service leads a session of its own
  if (trainerSid) killSession(trainerSid);
  await service?.exited();
  service = trainerSid = undefined;
});

after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

test('kill -9 during a job: the trainer and its workers are gone within 10 s; the next start resumes from the checkpoint and succeeds; the database is intact', async () => {
  const dataDir = path.join(tmp, 'data-kill');
  let { url } = await startService(dataDir);
  const id = await startJob(url, { output_model: 'recovered', hyperparameters: tinyHyperparameters(6), device: { device: 'cpu', num_workers: WORKERS } });
  await waitFor('a checkpoint', async () => (await getJob(url, id)).progress.step >= 2);
  const trainer = trainerOf(dataDir, id);
  assert.ok(sessionMembers(trainer).length >= 1 + WORKERS, `the trainer runs with ${WORKERS} DataLoader workers`);

  service!.child.kill('SIGKILL');
  await service!.exited();
  const left = await waitUntilSessionGone(trainer, GONE_WITHIN_MS);
  assert.deepEqual(left, [], `trainer processes left ${GONE_WITHIN_MS} ms after the service died`);

  ({ url } = await startService(dataDir));
  const resumed = await getJob(url, id);
  assert.notEqual(resumed.status, 'failed', JSON.stringify(resumed.error));
  const done = await waitFor('the resumed job to end', async () => {
    const job = await getJob(url, id);
    return ['succeeded', 'failed', 'cancelled'].includes(job.status) && job;
  });
  assert.equal(done.status, 'succeeded', JSON.stringify(done.error));
  assert.equal(done.attempts, 2);
  assert.deepEqual(done.result, { model: 'recovered', version: 1 });
  const events = (await (await fetch(`${url}/jobs/${id}/events?limit=1000`, { headers: bearer() })).json()) as { data: { type: string; data: { step?: number } }[] };
  const recovered = events.data.find((e) => e.type === 'recovered');
  assert.ok(recovered && (recovered.data.step ?? 0) >= 2, 'resumed from a checkpoint, not from step 0');

  await service!.close();
  const check = openDatabase(path.join(dataDir, 'fqtok.db'));
  assert.equal(integrityCheck(check), 'ok');
  check.$client.close();
});

test('SIGTERM to the service group, SIGKILL during its graceful stop: the trainer and its workers are gone within 10 s', async () => {
  const dataDir = path.join(tmp, 'data-term');
  const { url } = await startService(dataDir);
  const id = await startJob(url, { output_model: 'long', hyperparameters: tinyHyperparameters(100_000), device: { device: 'cpu', num_workers: WORKERS } });
  await waitFor('the first training step', async () => (await getJob(url, id)).progress.step >= 1);
  const trainer = trainerOf(dataDir, id);
  assert.ok(sessionMembers(trainer).length >= 1 + WORKERS, `the trainer runs with ${WORKERS} DataLoader workers`);

  process.kill(-service!.pid, 'SIGTERM'); // as a process manager stops the group
  await service!.waitForLog('the graceful stop to begin', (l) => l.msg === 'shutting down: finishing in-flight work');
  try {
    process.kill(-service!.pid, 'SIGKILL'); // ... and kills it before the stop has finished
  } catch {
    // it had already finished its graceful stop
  }
  await service!.exited();
  const left = await waitUntilSessionGone(trainer, GONE_WITHIN_MS);
  assert.deepEqual(left, [], `trainer processes left ${GONE_WITHIN_MS} ms after the service died`);
});

test('a job interrupted before any checkpoint is failed with the reason', async () => {
  const dataDir = path.join(tmp, 'data-early');
  let { url } = await startService(dataDir);
  const id = await startJob(url, { output_model: 'lost', hyperparameters: tinyHyperparameters(50, { checkpoint_every: 0 }), device: CPU });
  await waitFor('the job to run', async () => (await getJob(url, id)).status === 'running');
  const trainer = trainerOf(dataDir, id);
  service!.child.kill('SIGKILL');
  await service!.exited();
  // The trainer, told to stop as its parent died, may still save a checkpoint on its way out: once it is
  // gone, remove what it saved, so that the job is as one killed before its first checkpoint.
  await waitFor('the trainer to exit', () => !alive(trainer), 30_000);
  await rm(path.join(dataDir, 'jobs', id, 'output', 'checkpoints'), { recursive: true, force: true });

  ({ url } = await startService(dataDir));
  const failed = await getJob(url, id);
  assert.equal(failed.status, 'failed');
  assert.match(JSON.stringify(failed.error), /before the trainer saved a checkpoint/);
});
