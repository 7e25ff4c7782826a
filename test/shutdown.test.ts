// Graceful shutdown: on SIGTERM the server stops accepting, finishes in-flight requests, and exits 0.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { test } from 'node:test';
import { makeImage } from './helpers/images.ts';
import { ROOT } from './helpers/server.ts';

test('SIGTERM during a request: the request completes, then the process exits 0', async () => {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/main.ts')], {
    cwd: ROOT,
    env: { ...process.env, FQ_PORT: '0', FQ_HOST: '127.0.0.1', FQ_BATCH_WAIT_MS: '300', FQ_LOG_LEVEL: 'info' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  const port = await new Promise<number>((resolve, reject) => {
    child.stderr.on('data', (chunk: Buffer) => {
      log += chunk.toString();
      const match = /"port":(\d+).*fqtok listening/.exec(log);
      if (match) resolve(Number(match[1]));
    });
    child.on('exit', () => reject(new Error(`server exited early:\n${log}`)));
  });
  const form = new FormData();
  form.append('image', new Blob([new Uint8Array(await makeImage(256, 256))]), 'a.png');
  // The batch waits 300 ms for company, so the request is in flight when SIGTERM arrives.
  const inFlight = fetch(`http://127.0.0.1:${port}/encode`, { method: 'POST', body: form });
  await new Promise((r) => setTimeout(r, 100));
  child.kill('SIGTERM');
  const response = await inFlight;
  assert.equal(response.status, 200);
  assert.ok(((await response.json()) as { images: unknown[] }).images.length === 1);
  const [code] = await once(child, 'exit');
  assert.equal(code, 0, log);
  assert.match(log, /shutting down/);
});
