// No trainer outlives the service: however the service dies, the trainer and its DataLoader workers are gone within 10 s.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, afterEach, before, test } from 'node:test';
import { openDatabase } from '../src/db/client.ts';
import { bearer, ADMIN_TOKEN, exportTinyModel, makeDataset, tinyHyperparameters, waitFor } from './helpers/finetune.ts';
import { killSession, sessionMembers, waitUntilSessionGone } from './helpers/processes.ts';
import { ROOT } from './helpers/server.ts';

const GONE_WITHIN_MS = 10_000; // the promise made in docs/fine-tuning.md
const WORKERS = 4; // the trainer's default num_workers, spelled out so the test says what it covers

let tmp: string;
let service: ChildProcess | undefined;
let trainerSid: number | undefined;

const freePort = () =>
  new Promise<number>((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });

/** The real service in a process group of its own (as a process manager would run it), with a job whose trainer is running. */
async function serviceWithRunningJob(): Promise<{ service: ChildProcess; trainer: number }> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const dataDir = path.join(tmp, `data-${port}`);
  service = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    cwd: ROOT,
    stdio: 'ignore',
    detached: true,
    env: {
      ...process.env,
      FQ_PORT: String(port),
      FQ_HOST: '127.0.0.1',
      FQ_MODELS_DIR: path.join(tmp, 'models'),
      FQ_DATA_DIR: dataDir,
      FQ_DATASETS_DIR: path.join(tmp, 'datasets'),
      FQ_ADMIN_TOKEN: ADMIN_TOKEN,
      FQ_PREPROCESS_THREADS: '1',
      FQ_LOG_LEVEL: 'silent',
    },
  });
  await waitFor('the service to listen', () => fetch(`${url}/jobs`, { headers: bearer() }).then((r) => (r.ok ? true : undefined), () => undefined), 60_000);
  const res = await fetch(`${url}/jobs/finetune`, {
    method: 'POST',
    headers: { ...bearer(), 'content-type': 'application/json' },
    body: JSON.stringify({ base_model: 'tiny', dataset: 'photos', output_model: 'long', hyperparameters: tinyHyperparameters(100_000), device: { device: 'cpu', num_workers: WORKERS } }),
  });
  const { id } = (await res.json()) as { id: string };
  assert.equal(res.status, 202);
  await waitFor('the first training step', async () => {
    const job = (await (await fetch(`${url}/jobs/${id}`, { headers: bearer() })).json()) as { progress: { step: number } };
    return job.progress.step >= 1 ? true : undefined;
  });
  const db = openDatabase(path.join(dataDir, 'fqtok.db'));
  const pid = db.$client.prepare('select pid from jobs where id = ?').pluck().get(id) as number;
  db.$client.close();
  trainerSid = pid; // the trainer is started as a session leader: its session is everything it started
  assert.ok(sessionMembers(pid).length >= 1 + WORKERS, `the trainer runs with ${WORKERS} DataLoader workers`);
  return { service, trainer: pid };
}

const exited = (child: ChildProcess) => new Promise((r) => (child.exitCode !== null || child.signalCode !== null ? r(undefined) : child.once('exit', r)));

before(async () => {
  tmp = await mkdtemp(path.join(tmpdir(), 'fqtok-lifetime-'));
  await exportTinyModel(path.join(tmp, 'models', 'tiny'));
  await makeDataset(path.join(tmp, 'datasets', 'photos'), 8);
});

afterEach(async () => {
  if (service?.pid) killSession(service.pid); // detached: the service leads a session of its own
  if (trainerSid) killSession(trainerSid);
  service = trainerSid = undefined;
});

after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

test('kill -9 of the service: the trainer and its workers are gone within 10 s', async () => {
  const { service, trainer } = await serviceWithRunningJob();
  service.kill('SIGKILL');
  await exited(service);
  const left = await waitUntilSessionGone(trainer, GONE_WITHIN_MS);
  assert.deepEqual(left, [], `trainer processes left ${GONE_WITHIN_MS} ms after the service died`);
});

test('SIGTERM to the service group, SIGKILL 1 s later: the trainer and its workers are gone within 10 s', async () => {
  const { service, trainer } = await serviceWithRunningJob();
  process.kill(-service.pid!, 'SIGTERM');
  await new Promise((r) => setTimeout(r, 1000));
  try {
    process.kill(-service.pid!, 'SIGKILL');
  } catch {
    // it had already finished its graceful stop
  }
  await exited(service);
  const left = await waitUntilSessionGone(trainer, GONE_WITHIN_MS);
  assert.deepEqual(left, [], `trainer processes left ${GONE_WITHIN_MS} ms after the service died`);
});
