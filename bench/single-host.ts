// The single-host example measured: nginx in front of three replicas and one admin instance (the same
// harness as test/single-host.test.ts). Prints one JSON object.
//
//   node --import tsx bench/single-host.ts [--seconds 20] [--concurrency 8] [--kills 3]
//
// - pickup_ms: a fine-tune finished on the admin instance (its finished_at) until each replica lists it
//   (replicas poll the models folder every 2 s, as on a network volume);
// - errors_per_kill: a replica killed (-9) during a steady encode stream through nginx, then restarted on
//   its port; client errors counted per kill, next to the requests in flight at that moment;
// - throughput: encode requests/s (one 256x256 PNG each, the test-16 model) through nginx with three
//   replicas, then with two (one stopped by SIGTERM), for --seconds each; their ratio.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ADMIN_TOKEN, bearer, CPU, makeDataset, tinyHyperparameters } from '../test/helpers/finetune.ts';
import { exportModel } from '../test/helpers/export-model.ts';
import { waitFor } from '../test/helpers/wait.ts';
import { makeImage } from '../test/helpers/images.ts';
import { startServerProcess } from '../test/helpers/server-process.ts';
import { encodeStream, startSingleHost } from '../test/helpers/single-host.ts';

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '20' }, concurrency: { type: 'string', default: '8' }, kills: { type: 'string', default: '3' } } });
const seconds = Number(values.seconds);
const concurrency = Number(values.concurrency);

const tmp = await mkdtemp(path.join(tmpdir(), 'fqtok-bench-single-host-'));
const models = path.join(tmp, 'models');
await exportModel(path.join(models, 'tiny'), { preset: 'test-16' });
await makeDataset(path.join(tmp, 'datasets', 'photos'), 4);
const png = new Uint8Array(await makeImage(256, 256));
const replicaEnv = { FQ_DEFAULT_MODEL: 'tiny', FQ_MODELS_WATCH: '0', FQ_MODELS_POLL_MS: '2000' };
const host = await startSingleHost({
  workDir: tmp,
  modelsDir: models,
  env: replicaEnv,
  adminEnv: { FQ_ADMIN_TOKEN: ADMIN_TOKEN, FQ_DATASETS_DIR: path.join(tmp, 'datasets'), FQ_MODELS_WATCH: '1' },
});
const restarted: { close(): Promise<void> }[] = [];

async function throughput(): Promise<{ requests_per_s: number; errors: number }> {
  const end = Date.now() + seconds * 1000;
  const started = Date.now();
  const r = await encodeStream(host.lb.url, png, { concurrency, stop: () => Date.now() > end, maxRequests: 1e6 });
  return { requests_per_s: r.ok / ((Date.now() - started) / 1000), errors: r.errors.length };
}

try {
  // Pickup delay.
  const created = await fetch(`${host.lb.url}/jobs/finetune`, {
    method: 'POST',
    headers: { ...bearer(), 'content-type': 'application/json' },
    body: JSON.stringify({ base_model: 'tiny', dataset: 'photos', output_model: 'mine', hyperparameters: tinyHyperparameters(2), device: CPU }),
  });
  const { id } = (await created.json()) as { id: string };
  const job = await waitFor('the fine-tune', async () => {
    const j = (await (await fetch(`${host.lb.url}/jobs/${id}`, { headers: bearer() })).json()) as { status: string; finished_at: string };
    return j.status === 'succeeded' ? j : j.status === 'failed' ? Promise.reject(new Error(JSON.stringify(j))) : undefined;
  }, 300_000);
  const pickup = await Promise.all(
    host.replicas.map((replica) =>
      waitFor('pickup', async () => ((await fetch(`${replica.url}/models/mine`)).status === 200 ? Date.now() - Date.parse(job.finished_at) : undefined), 30_000, 50),
    ),
  );

  // Errors per kill -9, the replica restarted on its port after each.
  const kills: { errors: number; in_flight_clients: number }[] = [];
  for (let k = 0; k < Number(values.kills); k++) {
    const index = k % host.replicas.length;
    const victim = host.replicas[index]!;
    let killedAt: number | undefined;
    const r = await encodeStream(host.lb.url, png, {
      concurrency,
      maxRequests: 5_000,
      stop: (s) => {
        if (killedAt === undefined && s.ok >= 30) {
          process.kill(victim.pid, 'SIGKILL');
          killedAt = s.ok;
        }
        return killedAt !== undefined && s.ok >= killedAt + 60;
      },
    });
    await victim.exited();
    kills.push({ errors: r.errors.length, in_flight_clients: concurrency });
    const again = await startServerProcess({ ...replicaEnv, FQ_ROLE: 'replica', FQ_MODELS_DIR: models, FQ_DATA_DIR: path.join(tmp, `r${k}`), FQ_INTRA_OP_THREADS: '1', FQ_LOG_FORMAT: 'json', FQ_PORT: new URL(victim.url).port });
    restarted.push(again);
    host.replicas[index] = again;
  }

  // Throughput with three replicas, then two.
  const three = await throughput();
  const stopped = host.replicas[2]!;
  process.kill(stopped.pid, 'SIGTERM');
  await stopped.exited();
  const two = await throughput();

  console.log(
    JSON.stringify(
      {
        machine: 'shared 2-core VM, other engineers running tests at the same time',
        pickup_ms: pickup,
        errors_per_kill: kills,
        throughput: { seconds, concurrency, three_replicas: three, two_replicas: two, ratio_3_to_2: three.requests_per_s / two.requests_per_s },
      },
      null,
      2,
    ),
  );
} finally {
  await host.close();
  await Promise.all(restarted.map((p) => p.close()));
  await rm(tmp, { recursive: true, force: true });
}
