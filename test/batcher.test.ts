// The micro-batcher on its own: sharing runs, size limits, keys, overload, abandoned entries, drain.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FqError } from '../src/errors.ts';
import { MicroBatcher } from '../src/serving/batcher.ts';

function recordingBatcher(options: { maxBatch?: number; maxQueue?: number; maxWaitMs?: number; delayMs?: number } = {}) {
  const runs: number[][] = [];
  const batcher = new MicroBatcher<{ value: number; key?: string }, number>({
    maxBatch: options.maxBatch ?? 4,
    maxWaitMs: options.maxWaitMs ?? 5,
    maxQueue: options.maxQueue ?? 100,
    keyOf: (p) => p.key ?? '',
    run: async (payloads) => {
      runs.push(payloads.map((p) => p.value));
      await new Promise((r) => setTimeout(r, options.delayMs ?? 1));
      return payloads.map((p) => p.value * 10);
    },
  });
  return { batcher, runs };
}

test('concurrent entries share one run, each gets its own result', async () => {
  const { batcher, runs } = recordingBatcher();
  const results = await Promise.all([1, 2, 3].map((v) => batcher.submit({ value: v }, 1)));
  assert.deepEqual(results, [10, 20, 30]);
  assert.deepEqual(runs, [[1, 2, 3]]);
});

test('a batch runs as soon as maxBatch items wait, never holding more; the rest runs next', async () => {
  const { batcher, runs } = recordingBatcher({ maxBatch: 4 });
  await Promise.all([batcher.submit({ value: 1 }, 3), batcher.submit({ value: 2 }, 2), batcher.submit({ value: 3 }, 1)]);
  assert.deepEqual(runs, [[1], [2, 3]]);
});

test('entries with different keys never share a run', async () => {
  const { batcher, runs } = recordingBatcher();
  await Promise.all([batcher.submit({ value: 1, key: 'a' }, 1), batcher.submit({ value: 2, key: 'b' }, 1), batcher.submit({ value: 3, key: 'a' }, 1)]);
  assert.deepEqual(runs, [[1, 3], [2]]);
});

test('overload is refused at once, with a Retry-After from the runs ahead and how long a run takes', async () => {
  // A run takes at least 1.1 s here; after one, 2 items held ahead (batches of 1) mean 3 runs to wait:
  // at least ceil(3 x 1.1) = 4 s. (A hint that ignored the run time would say 1, the least it may say.)
  const { batcher } = recordingBatcher({ maxQueue: 2, maxBatch: 1, maxWaitMs: 0, delayMs: 1100 });
  assert.equal(await batcher.submit({ value: 1 }, 1), 10);
  await new Promise((r) => setImmediate(r)); // the run's bookkeeping settles right after its results
  const held = batcher.reserve(2);
  assert.throws(
    () => batcher.reserve(1),
    (err: FqError) => err.kind === 'overloaded' && (err.retryAfterSeconds ?? 0) >= 4,
  );
  await assert.rejects(batcher.submit({ value: 2 }, 1), (err: FqError) => err.kind === 'overloaded' && (err.retryAfterSeconds ?? 0) >= 4);
  held.release();
});

test('an entry whose caller left, or whose request passed its deadline, is dropped before it runs', async () => {
  const { batcher, runs } = recordingBatcher({ maxWaitMs: 60_000, maxBatch: 4 });
  const controller = new AbortController();
  const deadline = new AbortController();
  const aborted = batcher.submit({ value: 1 }, 1, { signal: controller.signal });
  const timedOut = batcher.submit({ value: 2 }, 1, { signal: deadline.signal });
  const kept = batcher.submit({ value: 3 }, 1);
  controller.abort();
  deadline.abort(new FqError('timeout', 'not processed within 5 ms')); // as a request scope's deadline aborts
  await assert.rejects(aborted, (e: FqError) => e.kind === 'bad_request');
  await assert.rejects(timedOut, (e: FqError) => e.kind === 'timeout');
  batcher.submit({ value: 4 }, 3); // fills the batch (maxBatch 4), so it runs now rather than after the wait
  assert.equal(await kept, 30);
  assert.deepEqual(runs, [[3, 4]]);
});

test('drain finishes accepted work and then refuses new entries', async () => {
  const { batcher } = recordingBatcher({ maxWaitMs: 20, delayMs: 10 });
  const pending = batcher.submit({ value: 7 }, 1);
  await batcher.drain();
  assert.equal(await pending, 70);
  await assert.rejects(batcher.submit({ value: 8 }, 1), (e: FqError) => e.kind === 'unavailable');
});

test('reserve admits a whole request or refuses it at once: too_large if it could never fit, overloaded if not now', async () => {
  const { batcher, runs } = recordingBatcher({ maxQueue: 4, maxBatch: 2, maxWaitMs: 1 });
  assert.throws(() => batcher.reserve(5), (err: FqError) => err.kind === 'too_large' && /at most 4/.test(err.message));
  const held = batcher.reserve(3);
  assert.throws(() => batcher.reserve(2), (err: FqError) => err.kind === 'overloaded' && /0 waiting to run and 3 being prepared/.test(err.message));
  const results = await Promise.all([batcher.submit({ value: 1 }, 2, { reservation: held }), batcher.submit({ value: 2 }, 1, { reservation: held })]);
  assert.deepEqual(results, [10, 20]);
  assert.equal(held.remaining, 0);
  held.release();
  const partly = batcher.reserve(4);
  partly.release(); // the request failed before submitting: its room comes back
  assert.equal(batcher.reserved, 0);
  batcher.reserve(4).release();
  assert.deepEqual(runs, [[1], [2]]);
});

test('drain waits for admitted requests: they still submit what they reserved, new ones are refused with the reason', async () => {
  const { batcher, runs } = recordingBatcher({ maxWaitMs: 1 });
  const admitted = batcher.reserve(2); // a request being prepared (its images decoded) when the model is unloaded
  let drained = false;
  const draining = batcher.drain('fqgan@1 is being unloaded').then(() => (drained = true));
  assert.throws(() => batcher.reserve(1), (e: FqError) => e.kind === 'unavailable' && /fqgan@1 is being unloaded/.test(e.message));
  await assert.rejects(batcher.submit({ value: 9 }, 1), (e: FqError) => e.kind === 'unavailable');
  assert.equal(await batcher.submit({ value: 1 }, 1, { reservation: admitted }), 10);
  assert.equal(drained, false, 'one reserved item is still held');
  admitted.release(); // the request ends without its second item
  await draining;
  assert.deepEqual(runs, [[1]]);
});
