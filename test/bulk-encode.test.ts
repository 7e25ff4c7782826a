// `fqtok encode` past one machine: WebDataset shards made by Python's tarfile (img2dataset's layout) in,
// code shards out; workers splitting the units; kill -9 and resume; bad samples recorded; refusals.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, test } from 'node:test';
import { PYTHON } from './helpers/python.ts';
import { ROOT } from './helpers/paths.ts';
import { waitFor } from './helpers/wait.ts';

const run = promisify(execFile);
const CLI = path.join(ROOT, 'src/cli.ts');
const ENV = { ...process.env, FQ_LOG_LEVEL: 'silent', FQ_MODELS_DIR: path.join(ROOT, 'models'), FQ_PREPROCESS_THREADS: '1' };
const SHARDS = 12;
const TIMEOUT_MS = 240_000;

let dir: string;
let shards: string; // the brace range naming all 12 shards
let one: string; // their code shards from one worker
interface FixtureSample {
  key: string;
  shard: string;
  cls: number;
  caption: string;
  good: boolean;
}
let samples: FixtureSample[];

/** `fqtok encode ARGS`. */
function encode(args: string[], env: Record<string, string> = {}) {
  return run(process.execPath, ['--import', 'tsx', CLI, 'encode', ...args], { cwd: ROOT, env: { ...ENV, ...env }, timeout: TIMEOUT_MS });
}

/** Runs the CLI and returns its exit code and output, whatever the code. */
async function encodeExit(args: string[], env: Record<string, string> = {}) {
  try {
    const { stdout, stderr } = await encode(args, env);
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

const tars = (out: string) => readdirSync(out).filter((f) => f.endsWith('.tar')).sort();

before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'fqtok-bulk-'));
  // Shard 3's second image is not a JPEG; shard 5's first sample has no image at all.
  await run(PYTHON, [path.join(ROOT, 'test/fixtures/make_img2dataset_shards.py'), dir, '--shards', String(SHARDS), '--per-shard', '2', '--corrupt', '3:1', '--no-image', '5:0']);
  samples = JSON.parse(readFileSync(path.join(dir, 'samples.json'), 'utf8')) as FixtureSample[];
  shards = path.join(dir, 'shards', `{00000..${String(SHARDS - 1).padStart(5, '0')}}.tar`);
  // The uninterrupted run every other output is compared with.
  one = path.join(dir, 'one');
  const single = await encode([shards, '--out', one]);
  assert.deepEqual(JSON.parse(single.stdout), { encoded: 22, skipped: 2, out: one, shard: '0/1', units_done: 12, units_failed: 0 });
  assert.match(single.stderr, /skipped 00003\.tar:000030001: image 0 \(000030001\.jpg\): not a decodable image/);
  assert.match(single.stderr, /skipped 00005\.tar:000050000: no image member \(jpg, jpeg, png, webp\)/);
});
after(() => rmSync(dir, { recursive: true, force: true }));

test('3 workers at once give the code shards of 1 worker and the codes of the folder path; Python reads them back', { timeout: TIMEOUT_MS }, async () => {
  const three = path.join(dir, 'three');
  const folder = path.join(dir, 'folder-codes');
  const [workers] = await Promise.all([
    Promise.all([0, 1, 2].map((i) => encode([path.join(dir, 'shards', '*.tar'), '--out', three, '--shard', `${i}/3`]))),
    // The same good images as a folder, in blocks of 10 (3 units), written as the reference layout.
    encode([path.join(dir, 'folder'), '--out', folder, '--block-size', '10']),
  ]);
  assert.deepEqual(
    workers.map((w) => JSON.parse(w.stdout).units_done),
    [4, 4, 4],
  );
  assert.equal(workers.reduce((n, w) => n + JSON.parse(w.stdout).encoded, 0), 22);

  assert.equal(tars(one).length, SHARDS);
  assert.deepEqual(tars(three), tars(one));
  for (const t of tars(one)) assert.ok(readFileSync(path.join(one, t)).equals(readFileSync(path.join(three, t))), `${t} differs between 1 and 3 workers`);

  // Read back by Python: tarfile + numpy, as a training loop would; codes compared with the folder run's .npy files.
  const script = `
import io, json, os, sys, tarfile
import numpy as np
out, folder = sys.argv[1], sys.argv[2]
seen = []
for name in sorted(f for f in os.listdir(out) if f.endswith('.tar')):
    with tarfile.open(os.path.join(out, name)) as tar:
        members = {}
        for m in tar.getmembers():
            key, ext = m.name.split('.', 1)
            members.setdefault(key, {})[ext] = tar.extractfile(m).read()
    for key, fields in members.items():
        codes = {cb: np.load(io.BytesIO(fields[cb + '.npy'])) for cb in ('vis', 'sem_mid', 'sem_high')}
        seen.append({'key': key, 'shard': name[:-4], 'cls': int(fields['cls']), 'caption': fields['txt'].decode(),
                     'json_key': json.loads(fields['json'])['key'], 'dtype': str(codes['vis'].dtype),
                     'shape': list(codes['vis'].shape), 'members': sorted(fields), 'codes': {cb: a.astype(np.int64) for cb, a in codes.items()}})
same = 0
for i, s in enumerate(seen):
    ref = {cb: np.load(os.path.join(folder, f'{i}_{cb}.npy')) for cb in ('vis', 'sem_mid', 'sem_high')}
    same += all(ref[cb].dtype == np.int64 and ref[cb].shape == (1, 1, 256) and np.array_equal(ref[cb][0], s['codes'][cb]) for cb in ref)
    del s['codes']
print(json.dumps({'samples': seen, 'same_as_folder': same}))`;
  const { stdout } = await run(PYTHON, ['-c', script, three, folder]);
  const read = JSON.parse(stdout) as { samples: Record<string, unknown>[]; same_as_folder: number };
  const good = samples.filter((s) => s.good);
  assert.deepEqual(
    read.samples.map(({ key, shard, cls, caption }) => ({ key, shard, cls, caption })),
    good.map(({ key, shard, cls, caption }) => ({ key, shard, cls, caption })),
  );
  for (const s of read.samples) {
    assert.equal(s.json_key, s.key);
    assert.equal(s.dtype, 'uint16');
    assert.deepEqual(s.shape, [1, 256]);
    assert.deepEqual(s.members, ['cls', 'json', 'sem_high.npy', 'sem_mid.npy', 'txt', 'vis.npy']);
  }
  assert.equal(read.same_as_folder, 22, 'codes from shards differ from the folder path\'s');

  // The records: the bad samples are listed where they were, and --status sums every worker's progress.
  const record = (unit: string) => JSON.parse(readFileSync(path.join(three, '.fqtok', 'done', `${unit}.json`), 'utf8'));
  assert.deepEqual(record('00003').errors.map((e: { key: string }) => e.key), ['000030001']);
  assert.deepEqual(record('00005').errors, [{ key: '000050000', source: '00005.tar:000050000', reason: 'no image member (jpg, jpeg, png, webp)' }]);
  assert.equal(record('00005').count, 1);
  const status = JSON.parse((await encode(['--status', three])).stdout);
  assert.deepEqual(status.units, { known: 12, done: 12, pending: 0, failed: [] });
  assert.equal(status.images, 22);
  assert.equal(status.errors, 2);
  assert.deepEqual(status.workers.map((w: { shard: string; done: number; state: string }) => [w.shard, w.done, w.state]), [['0/3', 4, 'finished'], ['1/3', 4, 'finished'], ['2/3', 4, 'finished']]);
  assert.ok(status.images_per_s > 0);
});

const doneUnits = (out: string) => (existsSync(path.join(out, '.fqtok', 'done')) ? readdirSync(path.join(out, '.fqtok', 'done')).map((f) => f.replace(/\.json$/, '')) : []);
/** Partial files being written: [unit, bytes]. */
function partials(out: string): [string, number][] {
  const root = path.join(out, '.fqtok', 'partial');
  if (!existsSync(root)) return [];
  return readdirSync(root).flatMap((unit) => readdirSync(path.join(root, unit)).map((f): [string, number] => [unit, statSync(path.join(root, unit, f)).size]));
}

test('kill -9 of a worker mid-shard, then a rerun: it completes, units done before are untouched, the output equals an uninterrupted run', { timeout: TIMEOUT_MS }, async () => {
  const out = path.join(dir, 'killed');
  const args = ['--import', 'tsx', CLI, 'encode', shards, '--out', out, '--batch-size', '1'];
  const child = spawn(process.execPath, args, { cwd: ROOT, env: ENV, stdio: 'ignore' });
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_code, signal) => resolve(signal)));
  let midShard: [string, number][];
  try {
    // Polled often: the window between a unit's first sample written and its commit is one image's inference.
    await waitFor('three units done and the next one partly written', () => doneUnits(out).length >= 3 && partials(out).some(([, bytes]) => bytes > 0), 120_000, 10);
    child.kill('SIGKILL');
    assert.equal(await exited, 'SIGKILL');
    midShard = partials(out).filter(([, bytes]) => bytes > 0);
  } finally {
    child.kill('SIGKILL');
  }
  // Killed inside a unit: its partial tar is there, and nothing under its final name or in done/.
  assert.ok(midShard.length > 0, 'the kill landed between units');
  const [cut] = midShard[0]!;
  assert.ok(!existsSync(path.join(out, `${cut}.tar`)), `${cut}.tar looks complete after the kill`);
  assert.ok(!doneUnits(out).includes(cut));
  const before = new Map(
    doneUnits(out).map((u) => {
      const s = statSync(path.join(out, `${u}.tar`), { bigint: true });
      return [u, [s.ino, s.mtimeNs]] as const;
    }),
  );
  for (const t of tars(out)) assert.ok(before.has(t.replace('.tar', '')), `${t} is under its final name without a done record`);

  const rerun = await encode([shards, '--out', out, '--batch-size', '1']);
  assert.equal(JSON.parse(rerun.stdout).units_done, 12);
  assert.match(rerun.stderr, new RegExp(`12 units, ${before.size} done before, ${12 - before.size} done now, 0 failed`));
  for (const [unit, [ino, mtime]] of before) {
    const s = statSync(path.join(out, `${unit}.tar`), { bigint: true });
    assert.deepEqual([s.ino, s.mtimeNs], [ino, mtime], `${unit}.tar was rewritten`);
  }
  assert.deepEqual(tars(out), tars(one));
  for (const t of tars(one)) assert.ok(readFileSync(path.join(out, t)).equals(readFileSync(path.join(one, t))), `${t} differs from the uninterrupted run's`);
  assert.deepEqual(partials(out), [], 'partial files left behind');
});

test('a rerun into a complete output touches nothing; one with another augment or layout is refused, saying what differs', { timeout: TIMEOUT_MS }, async () => {
  const mtimes = () => tars(one).map((t) => statSync(path.join(one, t), { bigint: true }).mtimeNs);
  const seen = mtimes();
  const again = await encode([shards, '--out', one]);
  assert.deepEqual(JSON.parse(again.stdout), { encoded: 0, skipped: 0, out: one, shard: '0/1', units_done: 12, units_failed: 0 });
  assert.deepEqual(mtimes(), seen);

  const flip = await encodeExit([shards, '--out', one, '--augment', 'flip']);
  assert.notEqual(flip.code, 0);
  assert.match(flip.stderr, /holds codes of another kind \(augment: none there, flip here\); refusing to mix them/);
  const layout = await encodeExit([shards, '--out', one, '--layout', 'reference']);
  assert.match(layout.stderr, /layout: webdataset there, reference here/);
  assert.deepEqual(mtimes(), seen);
});

test('shards into the reference layout with labels from .cls; a cut shard fails alone and is retried; --on-error fail stops at a bad image', { timeout: TIMEOUT_MS }, async () => {
  mkdirSync(path.join(dir, 'cut'));
  const whole = readFileSync(path.join(dir, 'shards', '00000.tar'));
  writeFileSync(path.join(dir, 'cut', '00000.tar'), whole.subarray(0, 40_000)); // inside its second image
  const out = path.join(dir, 'reference');
  const labels = path.join(dir, 'reference-labels');
  const inputs = [path.join(dir, 'cut', '00000.tar'), path.join(dir, 'shards', '00001.tar')];
  const first = await encodeExit([...inputs, '--out', out, '--layout', 'reference', '--labels', labels]);
  assert.equal(first.code, 1);
  assert.match(first.stderr, /unit 00000 failed: .* \(a rerun retries it\)/);
  assert.deepEqual(doneUnits(out), ['00001']);
  assert.deepEqual(readdirSync(out).filter((f) => f.endsWith('.npy')).sort(), ['000010000', '000010001'].flatMap((k) => ['sem_high', 'sem_mid', 'vis'].map((cb) => `${k}_${cb}.npy`)));
  assert.deepEqual(readdirSync(labels).filter((f) => f.endsWith('.npy')).sort(), ['000010000.npy', '000010001.npy']);
  const index = readFileSync(path.join(out, '.fqtok', 'index', '00001.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(index, [
    { key: '000010000', source: '00001.tar:000010000', label: 7 % 5 },
    { key: '000010001', source: '00001.tar:000010001', label: 8 % 5 },
  ]);
  // The shard repaired, the same command finishes the job; the codes are the code shard's, as int64 [1, views, h*w].
  writeFileSync(path.join(dir, 'cut', '00000.tar'), whole);
  const second = await encode([...inputs, '--out', out, '--layout', 'reference', '--labels', labels]);
  assert.equal(JSON.parse(second.stdout).units_done, 2);
  const script = `
import io, json, sys, tarfile
import numpy as np
out, labels, shard = sys.argv[1:4]
with tarfile.open(shard) as tar:
    vis = np.load(io.BytesIO(tar.extractfile('000000001.vis.npy').read()))
ref = np.load(f'{out}/000000001_vis.npy')
print(json.dumps([str(ref.dtype), list(ref.shape), bool(np.array_equal(ref[0], vis)), np.load(f'{labels}/000000001.npy').tolist()]))`;
  const { stdout } = await run(PYTHON, ['-c', script, out, labels, path.join(one, '00000.tar')]);
  assert.deepEqual(JSON.parse(stdout), ['int64', [1, 1, 256], true, [1]]);

  const strict = path.join(dir, 'strict');
  const stopped = await encodeExit([path.join(dir, 'shards', '00003.tar'), '--out', strict, '--on-error', 'fail']);
  assert.notEqual(stopped.code, 0);
  assert.match(stopped.stderr, /00003\.tar:000030001: image 0 \(000030001\.jpg\): not a decodable image.* \(--on-error fail\)/);
  assert.deepEqual(doneUnits(strict), []);
  assert.deepEqual(tars(strict), []);
});

test('a file list with labels into code shards: blocks of --block-size, labels as .cls, the shards\' codes', { timeout: TIMEOUT_MS }, async () => {
  const good = samples.filter((s) => s.good).slice(0, 3);
  const list = path.join(dir, 'list.txt');
  writeFileSync(list, ['# path<TAB>label', ...good.map((s) => `folder/${s.key}.jpg\t${s.cls + 100}`)].join('\n') + '\n');
  const out = path.join(dir, 'from-list');
  const result = await encode(['--file-list', list, '--out', out, '--layout', 'webdataset', '--block-size', '2']);
  assert.equal(JSON.parse(result.stdout).encoded, 3);
  assert.deepEqual(tars(out), ['000000.tar', '000001.tar']);
  const script = `
import io, json, os, sys, tarfile
import numpy as np
out, one = sys.argv[1], sys.argv[2]
got = []
for name in ('000000.tar', '000001.tar'):
    with tarfile.open(os.path.join(out, name)) as tar:
        names = tar.getnames()
        for key in sorted({n.split('.', 1)[0] for n in names}):
            f = lambda ext: tar.extractfile(f'{key}.{ext}').read()
            got.append([key, int(f('cls')), json.loads(f('json'))['file'].endswith('.jpg'), np.load(io.BytesIO(f('sem_mid.npy'))).tolist()])
with tarfile.open(os.path.join(one, '00000.tar')) as tar:
    expected = [np.load(io.BytesIO(tar.extractfile(f'00000000{i}.sem_mid.npy').read())).tolist() for i in (0, 1)]
with tarfile.open(os.path.join(one, '00001.tar')) as tar:
    expected.append(np.load(io.BytesIO(tar.extractfile('000010000.sem_mid.npy').read())).tolist())
print(json.dumps({'got': [g[:3] for g in got], 'same': [g[3] == e for g, e in zip(got, expected)]}))`;
  const { stdout } = await run(PYTHON, ['-c', script, out, one]);
  assert.deepEqual(JSON.parse(stdout), {
    got: [['0', good[0]!.cls + 100, true], ['1', good[1]!.cls + 100, true], ['2', good[2]!.cls + 100, true]],
    same: [true, true, true],
  });
});

test('the README\'s tarfile + numpy reader reads the code shards: keys, labels, captions, int64 [views, h*w]', { timeout: 60_000 }, async () => {
  const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const snippet = /```python\n(import glob, io, tarfile\n[\s\S]*?)```/.exec(readme)?.[1];
  assert.ok(snippet, 'the README has no tarfile reader');
  const script = `${snippet}
import json, sys
print(json.dumps([[s["key"], s["cls"], s["txt"], s["vis"].dtype.str, list(s["sem_high"].shape)] for s in code_samples(sys.argv[1] + "/*.tar")]))`;
  const { stdout } = await run(PYTHON, ['-c', script, one]);
  assert.deepEqual(
    JSON.parse(stdout),
    samples.filter((s) => s.good).map((s) => [s.key, s.cls, s.caption, '<i8', [1, 256]]),
  );
});
