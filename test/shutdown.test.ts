// Start-up and shutdown of the real process: on SIGTERM the server stops accepting, finishes in-flight
// requests and exits 0, or exits 1 and says how many it dropped when the grace runs out; a configuration
// that could never work is refused at start-up.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
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

/** Starts src/main.ts with `env`; resolves with its port once it listens, and its exit. */
function startMain(env: Record<string, string>) {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/main.ts')], {
    cwd: ROOT,
    env: { ...process.env, FQ_PORT: '0', FQ_HOST: '127.0.0.1', FQ_LOG_LEVEL: 'info', FQ_LOG_FORMAT: 'json', FQ_DATA_DIR: mkdtempSync(path.join(tmpdir(), 'fqtok-shutdown-')), ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  child.stderr.on('data', (chunk: Buffer) => (log += chunk.toString()));
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  const listening = new Promise<number>((resolve, reject) => {
    child.stderr.on('data', () => {
      const match = /"port":(\d+).*fqtok listening/.exec(log);
      if (match) resolve(Number(match[1]));
    });
    exited.then(([code]) => reject(new Error(`exited with ${code} before listening:\n${log}`)));
  });
  listening.catch(() => undefined);
  return { child, listening, exited, log: () => log };
}

test('SIGTERM with a request that outlives the grace: the request is dropped, logged, and the exit code is 1', async () => {
  const server = startMain({ FQ_SHUTDOWN_GRACE_MS: '300' });
  let client: ReturnType<typeof request> | undefined;
  try {
    const port = await server.listening;
    // Half a body, then nothing: the request stays in flight (the body idle timeout is 30 s).
    client = request({ port, host: '127.0.0.1', path: '/decode', method: 'POST', headers: { 'content-type': 'application/x-npz', 'content-length': '1000' } });
    client.on('error', () => undefined); // the server cuts it
    client.write(Buffer.alloc(500));
    await waitUntil('the server holds the body', async () => /^fqtok_request_body_bytes_in_flight 1000$/m.test(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()));
    server.child.kill('SIGTERM');
    const [code] = await server.exited;
    assert.equal(code, 1, server.log());
    assert.match(server.log(), /"dropped":1.*shutdown grace ran out: 1 request\(s\) dropped/);
  } finally {
    client?.destroy();
    server.child.kill('SIGKILL');
  }
});

test('an FQ_ADMIN_TOKEN of whitespace is refused at start-up', async () => {
  for (const token of [' '.repeat(20), 'sixteen-chars-ok but spaced']) {
    const server = startMain({ FQ_ADMIN_TOKEN: token });
    try {
      await assert.rejects(server.listening, /FQ_ADMIN_TOKEN must not contain spaces or other whitespace/);
      const [code] = await server.exited;
      assert.notEqual(code, 0);
    } finally {
      server.child.kill('SIGKILL');
    }
  }
});

async function waitUntil(what: string, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
