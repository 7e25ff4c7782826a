// Execution providers come from config; one that cannot load (CUDA without its libraries) is refused loudly
// (an error line with the runtime's reason, /models and fqtok_model_info), and the next one serves.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { makeImage } from './helpers/images.ts';
import { startTestServer } from './helpers/server.ts';
import { startServerProcess } from './helpers/server-process.ts';

test('FQ_EXECUTION_PROVIDERS=cuda,cpu without CUDA serves on CPU, says so in /models and /metrics, and logs why at error level', async () => {
  const server = await startServerProcess({ FQ_EXECUTION_PROVIDERS: 'cuda,cpu', FQ_CUDA_DEVICE_ID: '0' });
  try {
    type Listed = { execution_provider: string; requested_execution_provider: string; execution_provider_fallback: string | null };
    const list = (await (await fetch(`${server.url}/models`)).json()) as { models: Listed[] };
    assert.deepEqual(list.models.map((m) => [m.execution_provider, m.requested_execution_provider]), [['cpu', 'cuda']]);
    assert.match(list.models[0]!.execution_provider_fallback ?? '', /^cuda: .*cannot open shared object file/);
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    assert.match(metrics, /fqtok_model_info\{model="fqgan-triple-vq16-tiny",version="1",execution_provider="cpu",requested_execution_provider="cuda"\} 1/);
    const res = await fetch(`${server.url}/encode`, { method: 'POST', body: new Uint8Array(await makeImage(256, 256)), headers: { 'content-type': 'image/png' } });
    assert.equal(res.status, 200);
    await res.arrayBuffer();
    const refusal = server
      .log()
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as { msg: string; level: number; provider?: string; reason?: string; tf32?: string })
      .find((entry) => entry.msg === 'execution provider refused, trying the next');
    assert.ok(refusal, server.log());
    assert.equal(refusal.provider, 'cuda');
    assert.equal(refusal.level, 50, 'an error line, not a warning');
    assert.equal(refusal.tf32, 'off', 'the CUDA EP was tried with TF32 off (NVIDIA_TF32_OVERRIDE=0)');
    // The binding says only "Failed to load shared library"; the runtime's own line says which one.
    assert.match(refusal.reason ?? '', /Cuda: Failed to load shared library/);
    assert.match(refusal.reason ?? '', /cannot open shared object file/);
    assert.match(refusal.reason ?? '', /ONNXRUNTIME_NODE_INSTALL=cuda12/);
  } finally {
    await server.close();
  }
});

test('an unknown provider name is a configuration error at start-up', async () => {
  await assert.rejects(startTestServer({ FQ_EXECUTION_PROVIDERS: 'tpu' }), /FQ_EXECUTION_PROVIDERS/);
});
