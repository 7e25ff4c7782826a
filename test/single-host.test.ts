// The single-host example (issue 22 item 4 and its tests), as real processes: nginx in front of three
// serving replicas and one admin instance on one models folder. A replica's kill -9 or SIGTERM in the
// middle of a steady encode stream through nginx reaches no client.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ADMIN_TOKEN, bearer, CPU, makeDataset, tinyHyperparameters } from './helpers/finetune.ts';
import { exportModel } from './helpers/export-model.ts';
import { waitFor } from './helpers/wait.ts';
import { makeImage } from './helpers/images.ts';
import type { ServerProcess } from './helpers/server-process.ts';
import { encodeStream, startSingleHost, type SingleHost, type StreamResult } from './helpers/single-host.ts';

const CONCURRENCY = 4;
let tmp: string;
let host: SingleHost;
let png: Uint8Array<ArrayBuffer>;

/** The exit of a process signalled by the test, or a failure after `ms`. */
async function exitOf(p: ServerProcess, ms = 60_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`the process did not exit within ${ms} ms`)), ms)));
  try {
    await Promise.race([p.exited(), timeout]);
    return { code: p.child.exitCode, signal: p.child.signalCode };
  } finally {
    clearTimeout(timer);
  }
}

const answeredBy = (r: StreamResult) => new Set([...r.byUpstream.keys()].map((u) => u.split(', ').at(-1)!));
const portOf = (url: string) => new URL(url).port;

before(async () => {
  tmp = await mkdtemp(path.join(tmpdir(), 'fqtok-single-host-'));
  await exportModel(path.join(tmp, 'models', 'tiny'), { preset: 'test-16' });
  await makeDataset(path.join(tmp, 'datasets', 'photos'), 4);
  png = new Uint8Array(await makeImage(256, 256));
  host = await startSingleHost({
    workDir: tmp,
    modelsDir: path.join(tmp, 'models'),
    // Replicas see new versions by polling only, as on a network volume another machine writes to.
    env: { FQ_DEFAULT_MODEL: 'tiny', FQ_MODELS_WATCH: '0', FQ_MODELS_POLL_MS: '2000' },
    adminEnv: { FQ_ADMIN_TOKEN: ADMIN_TOKEN, FQ_DATASETS_DIR: path.join(tmp, 'datasets'), FQ_MODELS_WATCH: '1' },
  });
});

after(async () => {
  await host?.close();
  await rm(tmp, { recursive: true, force: true });
});

describe('nginx in front of three replicas and one admin instance', { timeout: 300_000 }, () => {
  test('encode is spread over the three replicas; admin routes reach the admin instance only', async () => {
    const stream = await encodeStream(host.lb.url, png, { concurrency: CONCURRENCY, stop: (r) => answeredBy(r).size === 3 && r.ok >= 12, maxRequests: 300 });
    assert.deepEqual(stream.errors, []);
    assert.deepEqual([...answeredBy(stream)].map((u) => u.split(':')[1]).sort(), host.replicas.map((r) => portOf(r.url)).sort());
    const jobs = await fetch(`${host.lb.url}/jobs`);
    assert.equal(jobs.status, 401, 'the admin instance asks for its token');
    assert.equal(jobs.headers.get('x-fqtok-upstream')?.split(':')[1], portOf(host.admin.url));
    const onReplica = await fetch(`${host.replicas[0]!.url}/jobs`);
    assert.equal(onReplica.status, 404);
  });

  test('a fine-tune finished on the admin instance is served by all three replicas within 10 s', async () => {
    const created = await fetch(`${host.lb.url}/jobs/finetune`, {
      method: 'POST',
      headers: { ...bearer(), 'content-type': 'application/json' },
      body: JSON.stringify({ base_model: 'tiny', dataset: 'photos', output_model: 'mine', hyperparameters: tinyHyperparameters(2), device: CPU }),
    });
    const { id } = (await created.json()) as { id: string };
    assert.equal(created.status, 202);
    type Job = { status: string; finished_at: string | null; result: { model: string; version: number } | null; error: unknown };
    const job = await waitFor(`job ${id} to end`, async () => {
      const j = (await (await fetch(`${host.lb.url}/jobs/${id}`, { headers: bearer() })).json()) as Job;
      return ['succeeded', 'failed', 'cancelled'].includes(j.status) ? j : undefined;
    }, 240_000);
    assert.equal(job.status, 'succeeded', JSON.stringify(job.error));
    assert.deepEqual(job.result, { model: 'mine', version: 1 });
    const published = Date.parse(job.finished_at!);
    const delays = await Promise.all(
      host.replicas.map((replica) =>
        waitFor(`${replica.url} to serve mine@1`, async () => {
          const res = await fetch(`${replica.url}/models/mine`);
          if (res.status !== 200) return undefined;
          return ((await res.json()) as { versions: number[] }).versions.includes(1) ? Date.now() - published : undefined;
        }, 20_000, 100),
      ),
    );
    assert.ok(Math.max(...delays) <= 10_000, `picked up after ${delays} ms`);
    console.log(`# pickup delay per replica (ms after the job finished): ${delays.join(', ')}`);
    const stream = await encodeStream(host.lb.url, png, { concurrency: CONCURRENCY, query: '?model=mine&version=1', stop: (r) => answeredBy(r).size === 3, maxRequests: 200 });
    assert.deepEqual(stream.errors, []);
    assert.equal(answeredBy(stream).size, 3, 'every replica encoded with the new version');
  });

  test('kill -9 of a replica during a steady stream: no client error, the stream goes on at the other two', async () => {
    const victim = host.replicas[0]!;
    let killedAt: number | undefined;
    const stream = await encodeStream(host.lb.url, png, {
      concurrency: CONCURRENCY,
      maxRequests: 2_000,
      stop: (r) => {
        if (killedAt === undefined && r.ok >= 20) {
          process.kill(victim.pid, 'SIGKILL');
          killedAt = r.ok;
        }
        return killedAt !== undefined && r.ok >= killedAt + 40;
      },
    });
    assert.ok(killedAt !== undefined, `the stream never reached 20 answers: ${stream.errors.slice(0, 3)}`);
    assert.equal((await exitOf(victim)).signal, 'SIGKILL');
    // What the killed replica held (at most one request per client) is resent by nginx (non_idempotent).
    assert.ok(stream.errors.length <= CONCURRENCY, `errors beyond what the replica held: ${stream.errors}`);
    assert.deepEqual(stream.errors, [], 'encode is resent to another replica: no client sees the crash');
    const after = await encodeStream(host.lb.url, png, { concurrency: CONCURRENCY, stop: (r) => r.ok >= 12, maxRequests: 100 });
    assert.deepEqual(after.errors, []);
    assert.ok(!answeredBy(after).has(`127.0.0.1:${portOf(victim.url)}`));
  });

  test('SIGTERM of a replica during a steady stream: zero client errors; it drains and exits 0', async () => {
    const victim = host.replicas[1]!;
    let signalled: number | undefined;
    const stream = await encodeStream(host.lb.url, png, {
      concurrency: CONCURRENCY,
      maxRequests: 2_000,
      stop: (r) => {
        if (signalled === undefined && r.ok >= 20) {
          process.kill(victim.pid, 'SIGTERM');
          signalled = r.ok;
        }
        return signalled !== undefined && r.ok >= signalled + 40;
      },
    });
    assert.deepEqual(stream.errors, []);
    assert.ok(signalled !== undefined, `the stream never reached 20 answers: ${stream.errors.slice(0, 3)}`);
    assert.deepEqual(await exitOf(victim), { code: 0, signal: null });
    const after = await encodeStream(host.lb.url, png, { concurrency: CONCURRENCY, stop: (r) => r.ok >= 12, maxRequests: 100 });
    assert.deepEqual(after.errors, []);
    assert.deepEqual([...answeredBy(after)], [`127.0.0.1:${portOf(host.replicas[2]!.url)}`]);
  });
});
