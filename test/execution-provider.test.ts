// Execution providers come from config; one that cannot load (CUDA without its libraries) falls back to CPU.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { makeImage } from './helpers/images.ts';
import { startTestServer } from './helpers/server.ts';

test('FQ_EXECUTION_PROVIDERS=cuda,cpu without CUDA serves on CPU and says so', async () => {
  const server = await startTestServer({ FQ_EXECUTION_PROVIDERS: 'cuda,cpu' });
  try {
    const list = (await (await fetch(`${server.url}/models`)).json()) as { models: { execution_provider: string }[] };
    assert.deepEqual(list.models.map((m) => m.execution_provider), ['cpu']);
    const res = await fetch(`${server.url}/encode`, { method: 'POST', body: new Uint8Array(await makeImage(256, 256)), headers: { 'content-type': 'image/png' } });
    assert.equal(res.status, 200);
    await res.arrayBuffer();
  } finally {
    await server.close();
  }
});

test('an unknown provider name is a configuration error at start-up', async () => {
  await assert.rejects(startTestServer({ FQ_EXECUTION_PROVIDERS: 'tpu' }), /FQ_EXECUTION_PROVIDERS/);
});
