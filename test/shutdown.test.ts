// Start-up and shutdown of the real process: on SIGTERM the server stops accepting, finishes in-flight
// requests and exits 0, or exits 1 and says how many it dropped when the grace runs out; a configuration
// that could never work is refused at start-up.
import assert from 'node:assert/strict';
import { request } from 'node:http';
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

test('SIGTERM with a request that outlives the grace: the request is dropped, logged, and the exit code is 1', async () => {
  const server = await startServerProcess({ FQ_SHUTDOWN_GRACE_MS: '300' });
  // Half a body, then nothing: the request stays in flight (the body idle timeout is 30 s).
  const client = request(`${server.url}/decode`, { method: 'POST', headers: { 'content-type': 'application/x-npz', 'content-length': '1000' } });
  try {
    client.on('error', () => undefined); // the server cuts it
    client.write(Buffer.alloc(500));
    await waitFor('the server to hold the body', async () => /^fqtok_request_body_bytes_in_flight 1000$/m.test(await (await fetch(`${server.url}/metrics`)).text()));
    server.child.kill('SIGTERM');
    await server.exited();
    assert.equal(server.child.exitCode, 1, server.log());
    const line = server.logs().find((l) => l.msg === 'shutdown grace ran out: 1 request(s) dropped');
    assert.equal(line?.dropped, 1, server.log());
  } finally {
    client.destroy();
    await server.close();
  }
});

test('an FQ_ADMIN_TOKEN with whitespace (it could never match) is refused at start-up', async () => {
  for (const token of [' '.repeat(20), 'sixteen-chars-ok but spaced']) {
    await assert.rejects(startServerProcess({ FQ_ADMIN_TOKEN: token }), /server exited early \(code 1[\s\S]*FQ_ADMIN_TOKEN must not contain spaces or other whitespace/);
  }
});
