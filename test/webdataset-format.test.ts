// WebDataset tar shards: member names split as WebDataset splits them, samples grouped by key from a stream,
// oversized members skipped unread, and the writer's bytes the same on every run.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { codeDtype, codesNpy, readShardSamples, ShardWriter, splitMemberName } from '../src/formats/webdataset.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'fqtok-wds-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('member names: the key is the path up to the first dot of the file name; metadata and dotless names are ignored, as WebDataset does', () => {
  assert.deepEqual(splitMemberName('000000001.jpg'), { key: '000000001', ext: 'jpg' });
  assert.deepEqual(splitMemberName('000000001.sem_mid.npy'), { key: '000000001', ext: 'sem_mid.npy' });
  assert.deepEqual(splitMemberName('train.v2/cat/0001.JPEG'), { key: 'train.v2/cat/0001', ext: 'JPEG' });
  assert.equal(splitMemberName('README'), undefined);
  assert.equal(splitMemberName('__key__.txt'), undefined);
  assert.deepEqual(splitMemberName('dir/.hidden'), { key: 'dir/', ext: 'hidden' }); // what WebDataset's own base_plus_ext makes of it
});

test('a written shard reads back as samples grouped by consecutive key; a member over the limit is skipped and reported', async () => {
  const file = path.join(dir, 'a.tar');
  const writer = new ShardWriter(file);
  await writer.add('k1.jpg', Buffer.from('image one'));
  await writer.add('k1.cls', Buffer.from('3'));
  await writer.add('k1.mp4', Buffer.from('not kept'));
  await writer.add('k2.jpg', Buffer.alloc(2000, 7));
  await writer.add('k2.txt', Buffer.from('caption'));
  await writer.add('k3.txt', Buffer.from('no image here'));
  const written = await writer.finish();
  assert.equal(written.bytes, readFileSync(file).length);

  const samples = [];
  for await (const s of readShardSamples(file, { keep: (ext) => ext !== 'mp4', maxMemberBytes: 1000 })) {
    samples.push({ key: s.key, members: Object.fromEntries([...s.members].map(([e, b]) => [e, b.toString()])), oversized: Object.fromEntries(s.oversized) });
  }
  assert.deepEqual(samples, [
    { key: 'k1', members: { jpg: 'image one', cls: '3' }, oversized: {} },
    { key: 'k2', members: { txt: 'caption' }, oversized: { jpg: 2000 } },
    { key: 'k3', members: { txt: 'no image here' }, oversized: {} },
  ]);

  // No time, owner or host in the headers: the same members give the same bytes.
  const again = path.join(dir, 'b.tar');
  const second = new ShardWriter(again);
  for (const [name, data] of [['k1.jpg', 'image one'], ['k1.cls', '3'], ['k1.mp4', 'not kept']] as const) await second.add(name, Buffer.from(data));
  await second.add('k2.jpg', Buffer.alloc(2000, 7));
  await second.add('k2.txt', Buffer.from('caption'));
  await second.add('k3.txt', Buffer.from('no image here'));
  assert.equal((await second.finish()).sha256, written.sha256);
});

test('a cut shard fails the iteration instead of ending early', async () => {
  const file = path.join(dir, 'whole.tar');
  const writer = new ShardWriter(file);
  for (let i = 0; i < 4; i++) await writer.add(`k${i}.jpg`, Buffer.alloc(3000, i));
  await writer.finish();
  const cut = path.join(dir, 'cut.tar');
  writeFileSync(cut, readFileSync(file).subarray(0, 5000));
  await assert.rejects(async () => {
    for await (const _ of readShardSamples(cut, { keep: () => true, maxMemberBytes: 1 << 20 })) void _;
  }, /Unexpected end of data/);
});

test('codes are uint16 up to 65,536 codes, int32 past them, as .npy', () => {
  assert.equal(codeDtype([16384, 16384, 16384]), 'uint16');
  assert.equal(codeDtype([65536]), 'uint16');
  assert.equal(codeDtype([16384, 65537]), 'int32');
  const npy = codesNpy(Int32Array.of(0, 65535, 7, 16383), [2, 2], 'uint16');
  assert.match(npy.subarray(0, 128).toString('latin1'), /'descr': '<u2', 'fortran_order': False, 'shape': \(2, 2\)/);
  assert.deepEqual([...new Uint16Array(npy.buffer.slice(npy.byteOffset + npy.length - 8, npy.byteOffset + npy.length))], [0, 65535, 7, 16383]);
});
