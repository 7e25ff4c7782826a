// Each launcher's environment (torchrun, Slurm, Kubernetes Indexed Jobs) maps to the expected share and GPU,
// in the function and through `fqtok encode --plan`, and under a real torchrun.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, test } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { isMine, workerDevice, workShare } from '../src/cli/bulk/launcher-env.ts';
import { PYTHON } from './helpers/python.ts';
import { ROOT } from './helpers/paths.ts';

const run = promisify(execFile);
/** The variables of every launcher, removed from the tests' own environment so that a CI runner's cannot leak in. */
const LAUNCHER_VARIABLES = /^(RANK|WORLD_SIZE|LOCAL_RANK|LOCAL_WORLD_SIZE|GROUP_RANK|SLURM_.*|JOB_COMPLETION_INDEX|FQ_SHARD_COUNT|FQ_CUDA_DEVICE_ID|CUDA_VISIBLE_DEVICES)$/;
const cleanEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !LAUNCHER_VARIABLES.test(k)));

test('shares: --shard wins, then torchrun, Slurm (tasks, arrays, both), Kubernetes; else the whole job', () => {
  const cases: [NodeJS.ProcessEnv, string | undefined, string][] = [
    [{}, undefined, '0/1 single'],
    [{ RANK: '5' }, '2/3', '2/3 flag'],
    [{ RANK: '5', WORLD_SIZE: '8', LOCAL_RANK: '1' }, undefined, '5/8 torchrun'],
    // torchrun inside a Slurm job: torchrun's global rank wins.
    [{ RANK: '9', WORLD_SIZE: '16', SLURM_PROCID: '1', SLURM_NTASKS: '2' }, undefined, '9/16 torchrun'],
    [{ SLURM_PROCID: '3', SLURM_NTASKS: '4' }, undefined, '3/4 slurm'],
    [{ SLURM_PROCID: '0', SLURM_NTASKS: '1', SLURM_ARRAY_TASK_ID: '6', SLURM_ARRAY_TASK_MIN: '0', SLURM_ARRAY_TASK_MAX: '7', SLURM_ARRAY_TASK_COUNT: '8' }, undefined, '6/8 slurm-array'],
    // --array=1-8: task ids start at 1.
    [{ SLURM_ARRAY_TASK_ID: '1', SLURM_ARRAY_TASK_MIN: '1', SLURM_ARRAY_TASK_MAX: '8', SLURM_ARRAY_TASK_COUNT: '8' }, undefined, '0/8 slurm-array'],
    // An array of 4 elements with 2 tasks each: 8 workers.
    [{ SLURM_PROCID: '1', SLURM_NTASKS: '2', SLURM_ARRAY_TASK_ID: '3', SLURM_ARRAY_TASK_MIN: '0', SLURM_ARRAY_TASK_COUNT: '4' }, undefined, '7/8 slurm'],
    [{ JOB_COMPLETION_INDEX: '4', FQ_SHARD_COUNT: '10' }, undefined, '4/10 kubernetes'],
  ];
  for (const [env, flag, expected] of cases) {
    const s = workShare(env, flag);
    assert.equal(`${s.index}/${s.count} ${s.source}`, expected, JSON.stringify(env));
  }
  const refusals: [NodeJS.ProcessEnv, string | undefined, RegExp][] = [
    [{}, '3/3', /worker 3 of 3 does not exist/],
    [{}, '1-of-2', /--shard must be i\/n/],
    [{ JOB_COMPLETION_INDEX: '2' }, undefined, /set FQ_SHARD_COUNT to the Job's completions/],
    [{ SLURM_ARRAY_TASK_ID: '2', SLURM_ARRAY_TASK_MIN: '0', SLURM_ARRAY_TASK_STEP: '2', SLURM_ARRAY_TASK_COUNT: '4' }, undefined, /consecutive task ids/],
    [{ RANK: 'x', WORLD_SIZE: '2' }, undefined, /RANK=x is not a whole number/],
  ];
  for (const [env, flag, message] of refusals) assert.throws(() => workShare(env, flag), message);
});

test('units are dealt round robin: every unit to exactly one worker, the same on every run', () => {
  for (const count of [1, 3, 8]) {
    const owners = Array.from({ length: 20 }, (_, k) => [...Array(count).keys()].filter((index) => isMine(k, { index, count, source: 'flag' })));
    assert.ok(owners.every((o) => o.length === 1));
    assert.deepEqual(owners.map((o) => o[0]), Array.from({ length: 20 }, (_, k) => k % count));
  }
});

test('devices: FQ_CUDA_DEVICE_ID wins, else the local rank among the visible devices, else 0', () => {
  const cases: [NodeJS.ProcessEnv, string][] = [
    [{}, '0 default'],
    [{ LOCAL_RANK: '3' }, '3 LOCAL_RANK'],
    [{ LOCAL_RANK: '3', CUDA_VISIBLE_DEVICES: '0,1,2,3,4,5,6,7' }, '3 LOCAL_RANK'],
    // Slurm's --gpus-per-task: each task sees one device, its own, as device 0.
    [{ SLURM_LOCALID: '5', CUDA_VISIBLE_DEVICES: '5' }, '0 SLURM_LOCALID'],
    [{ SLURM_LOCALID: '3', CUDA_VISIBLE_DEVICES: '2,3' }, '1 SLURM_LOCALID'],
    [{ LOCAL_RANK: '1', SLURM_LOCALID: '0' }, '1 LOCAL_RANK'],
    [{ LOCAL_RANK: '3', FQ_CUDA_DEVICE_ID: '0' }, '0 FQ_CUDA_DEVICE_ID'],
  ];
  for (const [env, expected] of cases) {
    const d = workerDevice(env);
    assert.equal(`${d.cudaDevice} ${d.source}`, expected, JSON.stringify(env));
  }
});

let dir: string;
before(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'fqtok-launchers-'));
  for (let i = 0; i < 5; i++) writeFileSync(path.join(dir, `${String(i).padStart(5, '0')}.tar`), '');
});
after(() => rmSync(dir, { recursive: true, force: true }));

interface PlanLine {
  shard: string;
  share_from: string;
  cuda_device: number;
  device_from: string;
  input: string;
  layout: string;
  units: number;
  mine: string[];
}

async function plan(env: Record<string, string>): Promise<PlanLine> {
  const { stdout } = await run(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/cli.ts'), 'encode', path.join(dir, '{00000..00004}.tar'), '--out', path.join(dir, 'out'), '--plan'], {
    cwd: ROOT,
    env: { ...cleanEnv, ...env },
    timeout: 60_000,
  });
  return JSON.parse(stdout) as PlanLine;
}

test('fqtok encode --plan under each launcher\'s environment: the share, its shards and the GPU', { timeout: 120_000 }, async () => {
  const [torchrun, slurm, array, kubernetes] = await Promise.all([
    plan({ RANK: '1', WORLD_SIZE: '2', LOCAL_RANK: '1', CUDA_VISIBLE_DEVICES: '0,1' }),
    plan({ SLURM_PROCID: '2', SLURM_NTASKS: '3', SLURM_LOCALID: '2' }),
    plan({ SLURM_ARRAY_TASK_ID: '4', SLURM_ARRAY_TASK_MIN: '0', SLURM_ARRAY_TASK_COUNT: '5' }),
    plan({ JOB_COMPLETION_INDEX: '0', FQ_SHARD_COUNT: '2' }),
  ]);
  assert.deepEqual(torchrun, { shard: '1/2', share_from: 'torchrun', cuda_device: 1, device_from: 'LOCAL_RANK', input: 'shards', layout: 'webdataset', units: 5, mine: ['00001', '00003'] });
  assert.deepEqual([slurm.shard, slurm.share_from, slurm.cuda_device, slurm.device_from, slurm.mine], ['2/3', 'slurm', 2, 'SLURM_LOCALID', ['00002']]);
  assert.deepEqual([array.shard, array.share_from, array.cuda_device, array.mine], ['4/5', 'slurm-array', 0, ['00004']]);
  assert.deepEqual([kubernetes.shard, kubernetes.share_from, kubernetes.cuda_device, kubernetes.mine], ['0/2', 'kubernetes', 0, ['00000', '00002', '00004']]);
});

test('torchrun --no_python --nproc_per_node 2 fqtok encode: each rank takes its own share and GPU', { timeout: 120_000 }, async () => {
  // --redirects 1 --tee 1: torch 1.13 under Python 3.11 (Debian's) cannot parse the default 0 (IntFlag
  // iteration changed), and tee prefixes each line with its rank ([default0]:). Newer torchrun needs neither.
  const torchrun = ['-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2', '--redirects', '1', '--tee', '1', '--log_dir', path.join(dir, 'torchrun-logs')];
  const { stdout } = await run(
    PYTHON,
    [...torchrun, '--no_python', path.join(ROOT, 'bin/fqtok.js'), 'encode', path.join(dir, '*.tar'), '--out', path.join(dir, 'out'), '--plan'],
    { cwd: ROOT, env: { ...cleanEnv, OMP_NUM_THREADS: '1' }, timeout: 100_000 },
  );
  const lines = stdout
    .split('\n')
    .map((l) => l.replace(/^\[default\d+\]:/, ''))
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as PlanLine);
  lines.sort((a, b) => a.shard.localeCompare(b.shard));
  assert.deepEqual(
    lines.map((l) => [l.shard, l.share_from, l.cuda_device, l.mine]),
    [
      ['0/2', 'torchrun', 0, ['00000', '00002', '00004']],
      ['1/2', 'torchrun', 1, ['00001', '00003']],
    ],
  );
});

test('the examples: the Indexed Job\'s FQ_SHARD_COUNT is its completions, the Slurm script is an array, the scripts parse', async () => {
  const examples = path.join(ROOT, 'examples', 'bulk-encode');
  const job = parseYaml(readFileSync(path.join(examples, 'k8s-indexed-job.yaml'), 'utf8')) as {
    kind: string;
    spec: { completionMode: string; completions: number; template: { spec: { containers: { args: string[]; env: { name: string; value: string }[] }[] } } };
  };
  assert.equal(job.kind, 'Job');
  assert.equal(job.spec.completionMode, 'Indexed');
  const container = job.spec.template.spec.containers[0]!;
  assert.equal(container.env.find((e) => e.name === 'FQ_SHARD_COUNT')?.value, String(job.spec.completions));
  assert.deepEqual(container.args.slice(0, 1), ['encode']);
  assert.match(container.args[1]!, /\{00000\.\.00127\}\.tar$/);
  const sbatch = readFileSync(path.join(examples, 'slurm-array.sbatch'), 'utf8');
  assert.match(sbatch, /^#SBATCH --array=0-15$/m);
  for (const script of ['slurm-array.sbatch', 'torchrun.sh']) await run('bash', ['-n', path.join(examples, script)]);
});
