// The hostile request bodies of issue 16, item 1, built byte by byte: archives that lie about their
// entries and sizes, and bodies far larger than any request the limits let through is worth. Shared by
// test/hostile-bodies.test.ts (the event loop stays free) and bench/hostile-bodies.ts (stalls and RSS).
import { createDeflateRaw } from 'node:zlib';
import { zipSync } from 'fflate';
import { npyHeader } from '../../src/formats/npz.ts';

export interface HostileBody {
  name: string;
  route: '/decode' | '/stats';
  contentType: string;
  bytes: Uint8Array;
  /** What the issue saw before the fix, for the reader of a failure. */
  before: string;
}

/**
 * 98 bytes: an end of central directory that points to a ZIP64 end record claiming 2^32 - 2 entries in a
 * central directory that starts where the body ends. A reader that walks the claimed entries (reading
 * zeros past the end) runs for hours.
 */
export function zip64EntryCountBomb(entries = 2 ** 32 - 2): Uint8Array {
  const out = Buffer.alloc(56 + 20 + 22);
  // ZIP64 end of central directory record, at offset 0
  out.writeUInt32LE(0x06064b50, 0);
  out.writeBigUInt64LE(44n, 4); // size of the rest of the record
  out.writeUInt16LE(45, 12); // version made by
  out.writeUInt16LE(45, 14); // version needed
  out.writeUInt32LE(0, 16); // this disk
  out.writeUInt32LE(0, 20); // disk of the central directory
  out.writeBigUInt64LE(BigInt(entries), 24); // entries on this disk
  out.writeBigUInt64LE(BigInt(entries), 32); // entries in all
  out.writeBigUInt64LE(0n, 40); // central directory size
  out.writeBigUInt64LE(BigInt(out.length), 48); // central directory offset: the end of the body
  // ZIP64 end of central directory locator
  out.writeUInt32LE(0x07064b50, 56);
  out.writeUInt32LE(0, 60);
  out.writeBigUInt64LE(0n, 64); // where the ZIP64 record is
  out.writeUInt32LE(1, 72); // disks
  // End of central directory: every field saturated, so readers look for the ZIP64 record
  out.writeUInt32LE(0x06054b50, 76);
  out.writeUInt16LE(0xffff, 80);
  out.writeUInt16LE(0xffff, 82);
  out.writeUInt16LE(0xffff, 84);
  out.writeUInt16LE(0xffff, 86);
  out.writeUInt32LE(0xffffffff, 88);
  out.writeUInt32LE(0xffffffff, 92);
  out.writeUInt16LE(0, 96);
  return new Uint8Array(out.buffer, out.byteOffset, out.length);
}

/** `megabytes` MB of zeros, raw-deflated as a stream (never held whole): about 1 KB per MB. */
export async function deflatedZeros(megabytes: number): Promise<Buffer> {
  const deflate = createDeflateRaw({ level: 9 });
  const chunks: Buffer[] = [];
  deflate.on('data', (c: Buffer) => chunks.push(c));
  const done = new Promise<void>((resolve, reject) => {
    deflate.on('end', resolve);
    deflate.on('error', reject);
  });
  const zeros = Buffer.alloc(1 << 20);
  for (let i = 0; i < megabytes; i++) {
    if (!deflate.write(zeros)) await new Promise((r) => deflate.once('drain', r));
  }
  deflate.end();
  await done;
  return Buffer.concat(chunks);
}

/**
 * A ZIP whose deflated entries each declare `declaredSize` uncompressed bytes (and a made-up CRC) but
 * hold `deflated` (e.g. 800 MB of zeros): a reader that trusts the stream instead of the header
 * inflates all of it.
 */
export function understatedZip(deflated: Buffer, entries: number, declaredSize = 200): Uint8Array {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (let i = 0; i < entries; i++) {
    const name = Buffer.from(entries === 1 ? 'vis.npy' : `vis${i}.npy`);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4); // version needed
    local.writeUInt16LE(8, 8); // deflate
    local.writeUInt32LE(0x12345678, 14); // CRC-32 (never right)
    local.writeUInt32LE(deflated.length, 18);
    local.writeUInt32LE(declaredSize, 22);
    local.writeUInt16LE(name.length, 26);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(20, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(8, 10);
    central.writeUInt32LE(0x12345678, 16);
    central.writeUInt32LE(deflated.length, 20);
    central.writeUInt32LE(declaredSize, 24);
    central.writeUInt16LE(name.length, 28);
    central.writeUInt32LE(offset, 42);
    locals.push(local, name, deflated);
    centrals.push(central, name);
    offset += local.length + name.length + deflated.length;
  }
  const directory = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries, 8);
  end.writeUInt16LE(entries, 10);
  end.writeUInt32LE(directory.length, 12);
  end.writeUInt32LE(offset, 16);
  const out = Buffer.concat([...locals, directory, end]);
  return new Uint8Array(out.buffer, out.byteOffset, out.length);
}

/** A small deterministic generator, so that a body is the same at every run. */
function lcg(seed: number) {
  let s = seed >>> 0;
  return () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0);
}

/** `{"tokens": {...}}` of three codebooks of `grids` x h*w random codes: about 6.4 bytes per token. */
export function jsonTokenBody(grids: number, cells = 256, codebookSize = 16384): Uint8Array {
  const next = lcg(7);
  const parts: string[] = [];
  for (const name of ['vis', 'sem_mid', 'sem_high']) {
    const rows: string[] = [];
    for (let g = 0; g < grids; g++) {
      const row = new Array<number>(cells);
      for (let i = 0; i < cells; i++) row[i] = next() % codebookSize;
      rows.push(`[${row.join(', ')}]`);
    }
    parts.push(`"${name}": [${rows.join(', ')}]`);
  }
  return new TextEncoder().encode(`{"tokens": {${parts.join(', ')}}}`);
}

/** A stored NPZ with one uint8 array `vis` of `grids` 16x16 grids: one byte per token, so 60 MiB is 245,760 grids. */
export function uint8TokenNpz(grids: number, side = 16): Uint8Array {
  const header = npyHeader('|u1', [grids, side, side]);
  const npy = new Uint8Array(header.length + grids * side * side);
  npy.set(header, 0);
  const next = lcg(11);
  for (let i = header.length; i < npy.length; i++) npy[i] = next() & 0xff;
  return zipSync({ 'vis.npy': npy }, { level: 0 });
}

/** Every hostile body of issue 16 item 1, with the route each was sent to. */
export async function hostileBodies(): Promise<HostileBody[]> {
  const npz = 'application/x-npz';
  const zeros800 = await deflatedZeros(800);
  const bomb = zip64EntryCountBomb();
  const one = understatedZip(zeros800, 1);
  return [
    { name: 'zip64 claims 2^32-2 entries (98 B)', route: '/decode', contentType: npz, bytes: bomb, before: '/healthz blocked for hours' },
    { name: 'zip64 claims 2^32-2 entries (98 B)', route: '/stats', contentType: npz, bytes: bomb, before: '/healthz blocked for hours' },
    { name: 'entry of 800 MB of zeros declared as 200 B', route: '/decode', contentType: npz, bytes: one, before: '/healthz blocked 2.7 s' },
    { name: 'four such entries (3.1 MB)', route: '/decode', contentType: npz, bytes: understatedZip(zeros800, 4), before: '/healthz blocked 14 s' },
    // 64 MiB minus room for the directory: as many of them as the body limit lets through
    { name: '64 MiB body of such entries', route: '/decode', contentType: npz, bytes: understatedZip(zeros800, Math.floor((64 * 2 ** 20 - 4096) / (zeros800.length + 100))), before: 'minutes' },
    { name: '62 MB JSON token body', route: '/decode', contentType: 'application/json', bytes: jsonTokenBody(12_600), before: '/healthz blocked 4.2 s, RSS 0.3 -> 1.7 GB' },
    { name: '60 MiB uint8 NPZ (245,760 grids)', route: '/stats', contentType: npz, bytes: uint8TokenNpz(245_760), before: 'no image cap, RSS +400 MB' },
  ];
}
