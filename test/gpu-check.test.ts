// bench/gpu-check/run.sh in its CPU quick mode: every part runs its CPU path and the merged JSON says so;
// only GPU-only figures may be reported as skipped.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { ROOT } from './helpers/server.ts';

const TIMEOUT_MS = 900_000;
const GPU_ONLY = new Set(['train_bf16']);

interface Part {
  status: 'ok' | 'failed' | 'skipped';
  reason?: string;
  stderr_tail?: string;
  result?: Record<string, any>;
}

test('gpu-check run.sh --device cpu --quick writes one JSON with every CPU part ok', { timeout: TIMEOUT_MS + 30_000 }, async () => {
  const out = mkdtempSync(path.join(os.tmpdir(), 'fqtok-gpu-check-'));
  // Its own process group, so a timeout ends the whole tree (python, node, trainer).
  const child = spawn('bash', [path.join(ROOT, 'bench/gpu-check/run.sh'), '--device', 'cpu', '--quick'], {
    cwd: ROOT,
    env: { ...process.env, OUT: out, FQ_PYTHON: process.env.FQ_PYTHON ?? '/usr/bin/python3' },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let log = '';
  child.stdout.on('data', (d: Buffer) => (log += d.toString()));
  child.stderr.on('data', (d: Buffer) => (log += d.toString()));
  const timer = setTimeout(() => process.kill(-child.pid!, 'SIGKILL'), TIMEOUT_MS);
  try {
    const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
    assert.equal(code, 0, log);
    const result = JSON.parse(readFileSync(path.join(out, 'gpu-check.json'), 'utf8')) as { parts: Record<string, Part> };
    const parts = result.parts;
    for (const name of ['env', 'export', 'ort_webgpu', 'torch_eager', 'train_cpu', 'finetune']) assert.ok(parts[name], `no part ${name}`);
    for (const [name, part] of Object.entries(parts)) {
      if (GPU_ONLY.has(name)) assert.equal(part.status, 'skipped', name);
      else assert.equal(part.status, 'ok', `${name}: ${part.reason ?? ''} ${part.stderr_tail ?? ''}`);
    }
    for (const layout of ['NCHW', 'NHWC']) {
      const entry = parts.ort_webgpu!.result!.layouts[layout];
      assert.equal(entry.error, undefined, entry.error);
      assert.equal(entry.token_agreement_with_cpu_clear, 1, layout);
      assert.ok(entry.encode_images_per_s['1'] > 0 && entry.decode_images_per_s['1'] > 0);
    }
    const fp32 = parts.torch_eager!.result!.modes.fp32;
    assert.ok(fp32.encode_images_per_s['1'] > 0 && fp32.decode_images_per_s['2'] > 0);
    assert.equal(parts.finetune!.result!.ok, true);
    assert.ok(parts.train_cpu!.result!.images_per_s > 0);
  } finally {
    clearTimeout(timer);
    if (child.exitCode === null && child.signalCode === null) process.kill(-child.pid!, 'SIGKILL');
    rmSync(out, { recursive: true, force: true });
  }
});
