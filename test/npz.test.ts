// NPY/NPZ: our files read back in numpy exactly, and numpy's files (savez, savez_compressed, int64) read here.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { FqError } from '../src/errors.ts';
import { readNpz, writeNpz } from '../src/formats/npz.ts';
import { deflatedZeros, uint8TokenNpz, understatedZip, zip64EntryCountBomb } from './helpers/hostile-bodies.ts';
import { PYTHON as python } from './helpers/python.ts';


test('numpy.load reads our NPZ; we read numpy savez and savez_compressed files', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'fqtok-npz-'));
  const data = Int32Array.from({ length: 2 * 3 * 4 * 5 }, (_, i) => i * 7 - 20);
  writeFileSync(path.join(dir, 'ours.npz'), writeNpz({ vis: { shape: [2, 3, 4, 5], data } }));
  const script = `
import numpy as np, sys, os
d = sys.argv[1]
a = np.load(os.path.join(d, 'ours.npz'))['vis']
assert a.dtype == np.int32 and a.shape == (2, 3, 4, 5), (a.dtype, a.shape)
assert (a.ravel() == np.arange(120) * 7 - 20).all()
x = (np.arange(2 * 16 * 16).reshape(2, 16, 16) * 3).astype(np.int64)
np.savez(os.path.join(d, 'plain.npz'), vis=x, sem=x[::-1].copy())
np.savez_compressed(os.path.join(d, 'packed.npz'), vis=x.astype(np.int16))
`;
  execFileSync(python, ['-c', script, dir]);
  for (const name of ['plain.npz', 'packed.npz']) {
    const arrays = await readNpz(readFileSync(path.join(dir, name)), { maxBytes: 1 << 20 });
    assert.deepEqual(arrays.vis!.shape, [2, 16, 16]);
    assert.deepEqual(Array.from(arrays.vis!.data.subarray(0, 4)), [0, 3, 6, 9]);
  }
  assert.deepEqual(Object.keys(await readNpz(readFileSync(path.join(dir, 'plain.npz')), { maxBytes: 1 << 20 })).sort(), ['sem', 'vis']);
});

test('an NPZ that inflates beyond the limit is refused', async () => {
  const big = writeNpz({ vis: { shape: [1000, 1000], data: new Int32Array(1_000_000) } });
  await assert.rejects(readNpz(big, { maxBytes: 1 << 20 }), /inflates to more than/);
});

test('archives that lie are refused from what they claim, before their data is read', async () => {
  const refusal = (kind: string, detail: RegExp) => (err: unknown) => err instanceof FqError && err.kind === kind && detail.test(err.message);
  // 2^32 - 2 entries claimed by a 98-byte body
  await assert.rejects(readNpz(zip64EntryCountBomb(), { maxBytes: 1 << 26 }), refusal('bad_tokens', /claims 4294967294 entries, more than its 98 bytes/));
  // an entry that declares 200 bytes and holds 8 MB of zeros: inflation stops at the declared size
  const zeros = await deflatedZeros(8);
  await assert.rejects(readNpz(understatedZip(zeros, 1), { maxBytes: 1 << 26 }), refusal('bad_tokens', /'vis.npy' inflates beyond the 200 bytes it declares/));
  // an array whose header claims more values than allowed: refused from the header
  const many = uint8TokenNpz(1000);
  await assert.rejects(
    readNpz(many, { maxBytes: 1 << 26, maxValues: 64 * 256, tooManyValues: (name, n) => `${name}: ${n} tokens` }),
    refusal('too_large', /^vis: 256000 tokens$/),
  );
  assert.deepEqual((await readNpz(many, { maxBytes: 1 << 26, maxValues: 256_000 })).vis!.shape, [1000, 16, 16]);
});

test('writeNpz is deterministic: the same codes give the same bytes (a fixed entry time, not the clock)', () => {
  const bytes = writeNpz({ vis: { shape: [2, 2], data: Int32Array.from([1, 2, 3, 4]) } });
  const header = new DataView(bytes.buffer, bytes.byteOffset, 30);
  assert.equal(header.getUint32(0, true), 0x04034b50); // a local file header
  // DOS date at offset 12: (year - 1980) << 9 | month << 5 | day; 2000-01-01 -> 20 << 9 | 1 << 5 | 1
  assert.equal(header.getUint16(12, true), (20 << 9) | (1 << 5) | 1);
  assert.equal(header.getUint16(10, true), 0); // 00:00:00
});
