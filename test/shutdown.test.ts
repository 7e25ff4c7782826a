// Graceful shutdown: on SIGTERM the server stops accepting, finishes in-flight requests, and exits 0.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { makeImage } from './helpers/images.ts';
import { startServerProcess } from './helpers/server-process.ts';
import { waitFor } from './helpers/wait.ts';

test('SIGTERM during a request: the request completes, then the process exits 0', async () => {
  // A batch waits 5 s for company, so the request is still queued when SIGTERM arrives.
  const server = await startServerProcess({ FQ_BATCH_WAIT_MS: '5000' });
  try {
    const form = new FormData();
    form.append('image', new Blob([new Uint8Array(await makeImage(256, 256))]), 'a.png');
    const inFlight = fetch(`${server.url}/encode`, { method: 'POST', body: form });
    await waitFor('the request to wait in the encode queue', async () => {
      const metrics = await (await fetch(`${server.url}/metrics`)).text();
      return /^fqtok_queue_depth\{model="[^"]+",operation="encode"\} 1$/m.test(metrics);
    });
    server.child.kill('SIGTERM');
    const response = await inFlight;
    assert.equal(response.status, 200);
    assert.equal(((await response.json()) as { images: unknown[] }).images.length, 1);
    await server.exited();
    assert.equal(server.child.exitCode, 0, server.log());
    assert.ok(server.logs().some((l) => l.msg === 'shutting down: finishing in-flight work'));
  } finally {
    await server.close();
  }
});
