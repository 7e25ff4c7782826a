// NPY/NPZ: our files read back in numpy exactly, and numpy's files (savez, savez_compressed, int64) read here.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { readNpz, writeNpz } from '../src/formats/npz.ts';
import { PYTHON as python } from './helpers/python.ts';


test('numpy.load reads our NPZ; we read numpy savez and savez_compressed files', () => {
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
    const arrays = readNpz(readFileSync(path.join(dir, name)), 1 << 20);
    assert.deepEqual(arrays.vis!.shape, [2, 16, 16]);
    assert.deepEqual(Array.from(arrays.vis!.data.subarray(0, 4)), [0, 3, 6, 9]);
  }
  assert.deepEqual(Object.keys(readNpz(readFileSync(path.join(dir, 'plain.npz')), 1 << 20)).sort(), ['sem', 'vis']);
});

test('an NPZ that inflates beyond the limit is refused', () => {
  const big = writeNpz({ vis: { shape: [1000, 1000], data: new Int32Array(1_000_000) } });
  assert.throws(() => readNpz(big, 1 << 20), /inflates/);
});
