// The CUDA EP runs at fp32: fqtok sets NVIDIA_TF32_OVERRIDE=0 for its own process (where onnxruntime's CUDA
// libraries load) before the first CUDA session, and keeps it from its Python children, which choose their
// own precision; a value set from outside is left alone and passed on.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { test } from 'node:test';
import { ROOT } from './helpers/paths.ts';

/** What a fresh process sees after pinCudaFp32(): its own variable, the NVIDIA libraries' view, and a Python child's. */
async function afterPin(env: Record<string, string | undefined>): Promise<[string | null, boolean, string | null]> {
  const script = `
import { execFileSync } from 'node:child_process';
import { cudaTf32Off, pinCudaFp32 } from './src/backends/onnx/cuda-fp32.ts';
import { childEnv } from './src/python-launcher.ts';
pinCudaFp32();
// A C-level getenv, as the CUDA libraries do it: a child started with the real environment.
const seen = execFileSync('/bin/sh', ['-c', 'printf %s "$NVIDIA_TF32_OVERRIDE"'], { env: process.env }).toString();
console.log(JSON.stringify([seen || null, cudaTf32Off(), childEnv().NVIDIA_TF32_OVERRIDE ?? null]));`;
  const clean: NodeJS.ProcessEnv = { ...process.env, ...env };
  for (const [k, v] of Object.entries(env)) if (v === undefined) delete clean[k];
  const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: ROOT, env: clean });
  return JSON.parse(stdout) as [string | null, boolean, string | null];
}

test('unset: fqtok sets NVIDIA_TF32_OVERRIDE=0 for itself and its check processes, not for Python children', async () => {
  assert.deepEqual(await afterPin({ NVIDIA_TF32_OVERRIDE: undefined }), ['0', true, null]);
});

test('set from outside: left as it is, and passed on to Python children', async () => {
  assert.deepEqual(await afterPin({ NVIDIA_TF32_OVERRIDE: '1' }), ['1', false, '1']);
  assert.deepEqual(await afterPin({ NVIDIA_TF32_OVERRIDE: '0' }), ['0', true, '0']);
});
