// Issue 16, item 1: no body of any size the limits allow blocks the event loop for more than 50 ms.
// Each hostile body of the issue goes to a real server (its own process) while a probe asks GET /healthz
// back to back; no answer may wait more than 50 ms on the server's own work, and the body is refused
// with a 4xx that says why.
//
// The machine these tests run on is shared, and a server thread that is not scheduled for 80 ms looks
// like a stall: the probe counts a wait only while the server's event loop was on a CPU (loop-probe.ts),
// and a body whose probe is still over the bound is sent again, up to three times in all. A body that
// blocks the loop (each of these did, for 2.7 s to hours, on a CPU all along) fails every time.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { writeNpz } from '../src/formats/npz.ts';
import { hostileBodies, type HostileBody } from './helpers/hostile-bodies.ts';
import { startLoopProbe } from './helpers/loop-probe.ts';
import { postBody } from './helpers/post-body.ts';
import { startServerProcess, type ServerProcess } from './helpers/server-process.ts';

const STALL_BOUND_MS = 50;
const ATTEMPTS = 3;
/** Before the fix the server stayed blocked for hours: give up long before the test runner would. */
const ANSWER_TIMEOUT_MS = 30_000;

let server: ServerProcess;
let bodies: HostileBody[];

before(async () => {
  [server, bodies] = await Promise.all([startServerProcess({}), hostileBodies()]);
  // Warm up each route and body type, so that what is measured is the body, not a cold start.
  const grid = { shape: [1, 256], data: new Int32Array(256) };
  const npz = writeNpz({ vis: grid, sem_mid: grid, sem_high: grid });
  const json = JSON.stringify({ tokens: { vis: [Array(256).fill(0)], sem_mid: [Array(256).fill(0)], sem_high: [Array(256).fill(0)] } });
  for (const route of ['/decode', '/stats']) {
    for (const [type, body] of [['application/x-npz', npz], ['application/json', json]] as const) {
      const res = await fetch(server.url + route, { method: 'POST', headers: { 'content-type': type }, body: body as BodyInit });
      const answer = await res.arrayBuffer();
      assert.equal(res.status, 200, Buffer.from(answer).toString());
    }
  }
});
after(() => server?.close());

/** Sends the body while probing /healthz; the slowest probe and the answer. */
async function sendProbed(body: HostileBody) {
  const probe = await startLoopProbe(server.url, server.pid);
  try {
    const answer = await postBody(server.url + body.route, body.bytes, { 'content-type': body.contentType }, ANSWER_TIMEOUT_MS);
    // Work a handler may still do after answering (a worker's result, a collection) counts too.
    await new Promise((r) => setTimeout(r, 200));
    return { answer, stall: await probe.stop() };
  } finally {
    probe.kill();
  }
}

test('every hostile body of issue 16 is refused without stalling the event loop', async (t) => {
  for (const body of bodies) {
    await t.test(`${body.route}: ${body.name}`, async () => {
      const stalls: string[] = [];
      for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
        const { answer, stall } = await sendProbed(body);
        assert.notEqual(answer.status, null, `${body.route} did not answer within ${ANSWER_TIMEOUT_MS} ms (before the fix: ${body.before}); slowest /healthz: ${Math.round(stall.maxMs)} ms`);
        const problem = JSON.parse(answer.body.toString()) as { status: number; detail: string };
        assert.ok(answer.status === 413 || answer.status === 422, `${answer.status}: ${problem.detail}`);
        assert.equal(answer.headers['content-type'], 'application/problem+json');
        stalls.push(`${Math.round(stall.ownStallMs)} ms (slowest answer ${Math.round(stall.maxMs)} ms)`);
        if (stall.ownStallMs < STALL_BOUND_MS) return;
      }
      assert.fail(`a /healthz answer waited over ${STALL_BOUND_MS} ms on the server's own work at every attempt: ${stalls.join(', ')} (before the fix: ${body.before})`);
    });
  }
});
