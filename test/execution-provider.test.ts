// Execution providers come from config; one that cannot load (CUDA without its libraries) is refused with
// the runtime's reason in the log, and the next one serves.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { makeImage } from './helpers/images.ts';
import { startTestServer } from './helpers/server.ts';
import { startServerProcess } from './helpers/server-process.ts';

test('FQ_EXECUTION_PROVIDERS=cuda,cpu without CUDA serves on CPU, says so, and logs why', async () => {
  const server = await startServerProcess({ FQ_EXECUTION_PROVIDERS: 'cuda,cpu', FQ_CUDA_DEVICE_ID: '0' });
  try {
    const list = (await (await fetch(`${server.url}/models`)).json()) as { models: { execution_provider: string }[] };
    assert.deepEqual(list.models.map((m) => m.execution_provider), ['cpu']);
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    assert.match(metrics, /fqtok_model_info\{model="fqgan-triple-vq16-tiny",version="1",execution_provider="cpu"\} 1/);
    const res = await fetch(`${server.url}/encode`, { method: 'POST', body: new Uint8Array(await makeImage(256, 256)), headers: { 'content-type': 'image/png' } });
    assert.equal(res.status, 200);
    await res.arrayBuffer();
    const refusal = server
      .log()
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as { msg: string; provider?: string; reason?: string })
      .find((entry) => entry.msg === 'execution provider refused, trying the next');
    assert.ok(refusal, server.log());
    assert.equal(refusal.provider, 'cuda');
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
