// Issue 16, item 4: memory held by clients that are slow or gone. Request bodies in flight are capped
// across connections (503 with Retry-After past it, before a byte is read), a body that stops arriving
// is answered 408 after FQ_BODY_IDLE_TIMEOUT_MS and its bytes given back, a streamed archive that the
// client does not read stops decoding and is closed after FQ_WRITE_IDLE_TIMEOUT_MS, and a huge name sent
// by a client is not echoed whole into the answer or the log.
import assert from 'node:assert/strict';
import { request, type ClientRequest, type IncomingMessage } from 'node:http';
import { after, before, test } from 'node:test';
import { writeNpz } from '../src/formats/npz.ts';
import { postBody } from './helpers/post-body.ts';
import { startServerProcess, type ServerProcess } from './helpers/server-process.ts';

const MiB = 2 ** 20;
let server: ServerProcess;

before(async () => {
  server = await startServerProcess({
    FQ_MAX_BODY_BYTES: String(MiB),
    FQ_MAX_BODY_BYTES_IN_FLIGHT: String(2 * MiB),
    FQ_BODY_IDLE_TIMEOUT_MS: '1500',
  });
});
after(() => server?.close());

async function metric(name: string, labels = '', url = server.url): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const sample = new RegExp(`^${name}(\\{[^}]*\\})? (\\S+)$`);
  return text.split('\n').reduce((sum, line) => {
    const m = sample.exec(line);
    return m && (m[1] ?? '').includes(labels) ? sum + Number(m[2]) : sum;
  }, 0);
}

async function until(what: string, check: () => Promise<boolean>, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Declares `declared` bytes, sends `sent` of them and stalls; resolves with the answer and when the connection closed. */
function stalledUpload(declared: number, sent: number) {
  const req = request(`${server.url}/decode`, { method: 'POST', headers: { 'content-type': 'application/x-npz', 'content-length': String(declared) } });
  req.on('error', () => undefined);
  const answered = new Promise<{ res: IncomingMessage; body: string }>((resolve) =>
    req.on('response', (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ res, body }));
    }),
  );
  const closed = new Promise<void>((resolve) => req.on('close', () => resolve()));
  req.write(Buffer.alloc(sent, 1));
  return { req, answered, closed };
}

test('bodies in flight are capped across connections: past it 503 with Retry-After at once; a stalled body is a 408 and gives its bytes back', async () => {
  const stalled: { req: ClientRequest; answered: Promise<{ res: IncomingMessage; body: string }>; closed: Promise<void> }[] = [];
  try {
    // Two clients each declare a 1 MiB body, send most of it and stall: the 2 MiB budget is taken.
    for (let i = 0; i < 2; i++) stalled.push(stalledUpload(MiB, MiB - 1000));
    await until('both bodies are held', async () => (await metric('fqtok_request_body_bytes_in_flight')) === 2 * MiB);
    const refused = await postBody(`${server.url}/decode`, new Uint8Array(1000), { 'content-type': 'application/x-npz' }, 10_000);
    assert.equal(refused.status, 503, refused.body.toString());
    assert.equal(refused.headers['retry-after'], '1');
    assert.match(JSON.parse(refused.body.toString()).detail, /too many request bodies in flight \(FQ_MAX_BODY_BYTES_IN_FLIGHT/);
    // A body of unknown length (chunked) is counted as it arrives, and refused once it does not fit.
    const chunked = await new Promise<number | undefined>((resolve) => {
      const req = request(`${server.url}/stats`, { method: 'POST', headers: { 'content-type': 'application/x-npz', 'transfer-encoding': 'chunked' } }, (res) => {
        res.resume();
        resolve(res.statusCode);
      });
      req.on('error', () => undefined);
      req.end(Buffer.alloc(4096));
    });
    assert.equal(chunked, 503);
    // The stalled ones: 408 after the idle timeout, the connection closed, the budget given back.
    for (const s of stalled) {
      const { res, body } = await s.answered;
      assert.equal(res.statusCode, 408, body);
      assert.match(JSON.parse(body).detail, /no bytes for 1500 ms \(FQ_BODY_IDLE_TIMEOUT_MS\)/);
      await s.closed;
    }
    await until('the budget is free again', async () => (await metric('fqtok_request_body_bytes_in_flight')) === 0);
    const grid = { shape: [1, 256], data: new Int32Array(256) };
    const ok = await postBody(`${server.url}/stats`, writeNpz({ vis: grid, sem_mid: grid, sem_high: grid }), { 'content-type': 'application/x-npz' }, 10_000);
    assert.equal(ok.status, 200, ok.body.toString());
  } finally {
    for (const s of stalled) s.req.destroy();
  }
});

test('a ?format=npz archive the client never reads: decoding stops when the socket stops draining, and the connection is closed', async () => {
  const grids = 2000; // a 393 MB archive at 256 px
  const tokens = { shape: [grids, 256], data: new Int32Array(grids * 256) };
  const body = writeNpz({ vis: tokens, sem_mid: tokens, sem_high: tokens });
  // A server of its own: this body inflates past the 1 MiB limit of the other tests.
  const archives = await startServerProcess({ FQ_WRITE_IDLE_TIMEOUT_MS: '1500', FQ_MAX_IMAGES: String(grids), FQ_MAX_QUEUE: String(grids) });
  let req: ClientRequest | undefined;
  try {
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      req = request(`${archives.url}/decode?format=npz`, { method: 'POST', headers: { 'content-type': 'application/x-npz' } }, (r) => {
        r.pause(); // never read (a paused socket does not even see the server close it)
        resolve(r);
      });
      req.on('error', reject);
      req.end(body);
    });
    assert.equal(res.statusCode, 200);
    const declared = Number(res.headers['content-length']);
    assert.ok(declared > 390e6, `content-length ${declared}`);
    await until('the server gives up on the client', async () => archives.log().includes('client stopped reading the response: connection closed'));
    const decoded = await metric('fqtok_images_processed_total', 'operation="decode"', archives.url);
    // What the socket's buffers and the archive's queue hold, not the 2,000 grids asked for.
    assert.ok(decoded < 500, `${decoded} of ${grids} grids were decoded for a client that read nothing`);
    // Reading now gets what was already sent, then the end of a connection the server closed.
    let received = 0;
    res.on('data', (c: Buffer) => (received += c.length));
    res.on('error', () => undefined); // 'aborted': the body ended short
    const closed = new Promise((resolve) => res.once('close', resolve));
    res.resume();
    await closed;
    assert.equal(res.complete, false);
    assert.ok(received < declared / 10, `received ${received} of ${declared} bytes`);
    await until('the request is no longer queued', async () => (await metric('fqtok_queue_depth', '', archives.url)) === 0);
  } finally {
    req?.destroy();
    await archives.close();
  }
});

test('a client-sent name of a megabyte comes back clipped, in the answer and in the log', async () => {
  const name = 'm'.repeat(MiB - 100);
  const res = await postBody(`${server.url}/decode`, new TextEncoder().encode(JSON.stringify({ model: name, tokens: { vis: [[1]] } })), { 'content-type': 'application/json' }, 10_000);
  assert.equal(res.status, 404);
  assert.ok(res.body.length < 4000, `a ${res.body.length}-byte answer`);
  assert.match(JSON.parse(res.body.toString()).detail, /unknown model 'm{80}\.\.\.' \(1048476 characters\)/);
  await until('the refusal is logged', async () => server.log().includes('1048476 characters'));
  const line = server.log().split('\n').find((l) => l.includes('1048476 characters'))!;
  assert.ok(line.length < 4000, `a ${line.length}-character log line`);
});
