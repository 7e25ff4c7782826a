// bench/gpu-check/run.sh in its CPU quick mode (the full GPU check does not belong in npm test): every part
// runs its CPU path, each figure is the work asked for, the GPU schedule fits one 10-minute command, and a
// part that measured nothing fails the check.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { ROOT } from './helpers/server.ts';

const TIMEOUT_MS = 900_000;
const COMMAND_LIMIT_S = 600; // one command on the GPU machine
const MARGIN_S = 60; // left for start-up, the merge and the copy back

interface Part {
  status: 'ok' | 'partial' | 'failed' | 'skipped';
  reason?: string;
  stderr_tail?: string;
  result?: Record<string, any>;
}
interface CheckResult {
  parts: Record<string, Part>;
  summary: Record<string, string[]>;
  schedule: { total_s: number; grace_s: number; parts: { part: string; gpu_s: number; quick_s: number }[] };
}

/** Runs run.sh with `args` in its own process group (a timeout ends the whole tree); returns exit code and result. */
async function runCheck(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; log: string; result: CheckResult }> {
  const out = mkdtempSync(path.join(os.tmpdir(), 'fqtok-gpu-check-'));
  const child = spawn('bash', [path.join(ROOT, 'bench/gpu-check/run.sh'), ...args], {
    cwd: ROOT,
    env: { ...process.env, OUT: out, FQ_PYTHON: process.env.FQ_PYTHON ?? '/usr/bin/python3', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let log = '';
  child.stdout.on('data', (d: Buffer) => (log += d.toString()));
  child.stderr.on('data', (d: Buffer) => (log += d.toString()));
  const timer = setTimeout(() => process.kill(-child.pid!, 'SIGKILL'), TIMEOUT_MS);
  try {
    const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
    const result = JSON.parse(readFileSync(path.join(out, 'gpu-check.json'), 'utf8')) as CheckResult;
    return { code, log, result };
  } finally {
    clearTimeout(timer);
    if (child.exitCode === null && child.signalCode === null) process.kill(-child.pid!, 'SIGKILL');
    rmSync(out, { recursive: true, force: true });
  }
}

test('gpu-check run.sh --device cpu --quick: every CPU part measures what it was asked to', { timeout: TIMEOUT_MS + 30_000 }, async () => {
  const { code, log, result } = await runCheck(['--device', 'cpu', '--quick']);
  const parts = result.parts;
  const explain = (name: string) => `${name}: ${parts[name]?.status} ${parts[name]?.reason ?? ''} ${parts[name]?.stderr_tail ?? ''}`;
  assert.deepEqual(Object.keys(parts), ['env', 'finetune', 'export', 'train_throughput', 'torch_backend', 'ort_webgpu', 'teachers', 'torch_eager']);
  for (const name of ['env', 'finetune', 'train_throughput', 'torch_backend', 'ort_webgpu', 'torch_eager']) {
    assert.equal(parts[name]!.status, 'ok', explain(name));
  }
  assert.equal(parts.export!.status, 'skipped', 'the fine-tune exported the model the later parts use');
  assert.ok(parts.teachers!.status === 'ok' || parts.teachers!.reason === 'transformers is not installed here', explain('teachers'));
  assert.equal(code, 0, log);

  // The fine-tune ran to its end (3 steps, evaluation, export), and its model is the one measured after it.
  const finetune = parts.finetune!.result!;
  const run = finetune.plain ?? finetune.torchrun;
  assert.equal(finetune.ok, true);
  assert.equal(run.events.progress, 3);
  assert.equal(run.eval.images, 2);
  assert.match(run.exported, /finetune-job\/model$/);
  assert.equal(parts.ort_webgpu!.result!.image_size, 32, 'ort_webgpu measured the fine-tuned test-8 model');

  const train = parts.train_throughput!.result!;
  assert.equal(train.timed_steps, 2);
  assert.ok(train.step_ms_min <= train.step_ms_median && train.step_ms_median <= train.step_ms_max);
  assert.ok(Math.abs(train.images_per_s - (1000 * train.batch) / train.step_ms_median) <= 0.01 * train.images_per_s, JSON.stringify(train));

  const webgpu = parts.ort_webgpu!.result!;
  assert.equal(webgpu.measured, 8, JSON.stringify(webgpu));
  for (const layout of ['NCHW', 'NHWC']) {
    const entry = webgpu.layouts[layout];
    assert.equal(entry.errors, undefined, entry.errors?.join('; '));
    assert.ok(entry.tokens_compared > 0 && entry.token_agreement_with_cpu_clear === 1, layout);
    assert.ok(entry.decode_max_abs_vs_cpu <= 1e-3, `${layout}: decode differs from the CPU EP by ${entry.decode_max_abs_vs_cpu}`);
    assert.deepEqual(Object.keys(entry.encode_images_per_s), ['1']);
  }

  const eager = parts.torch_eager!.result!;
  assert.deepEqual(Object.keys(eager.modes), ['fp32']);
  assert.deepEqual(Object.keys(eager.modes.fp32.encode_images_per_s), ['1', '2']);
  const backend = parts.torch_backend!.result!;
  assert.deepEqual(backend.results.map((r: any) => [r.precision, r.batch]), [['fp32', 1], ['fp32', 2]]);
  assert.deepEqual(backend.baseline.map((b: any) => b.token_agreement_with_fp32), [1, 1]);

  // The GPU plan fits one command with margin: the parts' planned seconds, and a kill grace past the last.
  const gpuTotal = result.schedule.parts.reduce((sum, p) => sum + p.gpu_s, 0);
  assert.ok(gpuTotal + 5 <= COMMAND_LIMIT_S - MARGIN_S, `the GPU parts are planned for ${gpuTotal} s`);
  assert.deepEqual(result.schedule.parts.map((p) => p.part), Object.keys(parts));
});

test('gpu-check fails when a part measured nothing: WebGPU without a Vulkan driver', { timeout: TIMEOUT_MS + 30_000 }, async () => {
  // A driver manifest that does not exist: Dawn finds no adapter, as on a GPU machine whose NVIDIA
  // Vulkan driver the loader cannot find. Each layout fails inside the part.
  const { code, result } = await runCheck(['--device', 'cpu', '--quick', '--parts', 'ort_webgpu'], {
    VK_DRIVER_FILES: '/nonexistent/nvidia_icd.json',
    VK_ICD_FILENAMES: '/nonexistent/nvidia_icd.json',
  });
  assert.equal(code, 1);
  assert.deepEqual(Object.keys(result.parts), ['env', 'export', 'ort_webgpu']);
  assert.deepEqual(result.summary.failed, ['ort_webgpu']);
  const webgpu = result.parts.ort_webgpu!;
  assert.match(webgpu.reason!, /^it measured nothing: NCHW session: .*adapter.*; NHWC session: /s);
  assert.equal(webgpu.result!.measured, 0);
  assert.equal(result.parts.env!.result!.vulkan.preset, '/nonexistent/nvidia_icd.json');
});

test('gpu-check in its GPU schedule: the first part starts in its own slot', { timeout: TIMEOUT_MS + 30_000 }, async () => {
  const { code, log, result } = await runCheck(['--device', 'cpu', '--parts', 'env']);
  assert.equal(code, 0, log);
  assert.deepEqual(Object.keys(result.parts), ['env']);
  assert.equal(result.parts.env!.status, 'ok', result.parts.env!.reason);
  assert.equal(result.schedule.parts[0]!.part, 'env');
  assert.ok((result.parts.env!.result!.nproc as number) > 0);
});
