// WebDataset tar shards: samples streamed out of a shard (members grouped by key), and code shards written out.
//
// The conventions are WebDataset's: a member's key is its path up to the first dot of its file name and
// the rest is its extension (`a/000001.sem_mid.npy` is key `a/000001`, field `sem_mid.npy`); a sample is a
// run of consecutive members with one key; `__*__` names are metadata. Shards are read as streams, one
// member at a time, so memory follows the largest sample, never the shard.
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { npyHeader } from './npz.ts';

/** A sample of a shard: its key and the members kept (extension -> bytes). */
export interface ShardSample {
  key: string;
  members: Map<string, Buffer>;
  /** Members dropped for being over the size limit (extension -> bytes declared). */
  oversized: Map<string, number>;
}

export interface ReadShardOptions {
  /** Members kept, by extension (lower case, e.g. 'jpg', 'cls'); the others are skipped unread. */
  keep: (ext: string) => boolean;
  /** Largest member kept; a larger one is skipped unread and reported in `oversized`. */
  maxMemberBytes: number;
}

const KEY_AND_EXT = /^((?:.*\/|)[^.]+)\.([^/]*)$/;

/** WebDataset's split of a member name into key and extension; undefined for names it ignores. */
export function splitMemberName(name: string): { key: string; ext: string } | undefined {
  const base = name.slice(name.lastIndexOf('/') + 1);
  if (base.startsWith('__')) return undefined; // __key__ and other metadata members
  const m = KEY_AND_EXT.exec(name);
  return m ? { key: m[1]!, ext: m[2]! } : undefined;
}

async function readAll(stream: AsyncIterable<unknown>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/**
 * The samples of one tar shard, in order. Throws (from the iteration) when the file cannot be read or is
 * not a whole tar; stopping the iteration early closes the file.
 */
export async function* readShardSamples(file: string, options: ReadShardOptions): AsyncGenerator<ShardSample> {
  const source = createReadStream(file);
  const extract = tar.extract();
  source.on('error', (err) => extract.destroy(err));
  source.pipe(extract);
  let current: ShardSample | undefined;
  try {
    for await (const entry of extract) {
      const { name, type, size = 0 } = entry.header;
      const split = type === 'file' || type === 'contiguous-file' ? splitMemberName(name) : undefined;
      if (!split) {
        entry.resume();
        continue;
      }
      if (current?.key !== split.key) {
        if (current) yield current;
        current = { key: split.key, members: new Map(), oversized: new Map() };
      }
      const ext = split.ext.toLowerCase();
      if (!options.keep(ext)) entry.resume();
      else if (size > options.maxMemberBytes) {
        current.oversized.set(ext, size);
        entry.resume();
      } else current.members.set(ext, await readAll(entry));
    }
    if (current) yield current;
  } finally {
    source.destroy();
    extract.destroy();
  }
}

/** The smallest integer dtype holding every code of codebooks of these sizes: uint16 up to 65,536 codes, else int32. */
export function codeDtype(codebookSizes: readonly number[]): 'uint16' | 'int32' {
  return Math.max(...codebookSizes) <= 65536 ? 'uint16' : 'int32';
}

/** One .npy of codes in `dtype`, C order (values are checked codes: non-negative, below the codebook size). */
export function codesNpy(data: Int32Array, shape: readonly number[], dtype: 'uint16' | 'int32'): Buffer {
  const header = npyHeader(dtype === 'uint16' ? '<u2' : '<i4', shape);
  const values = dtype === 'uint16' ? Uint16Array.from(data) : data;
  const out = Buffer.alloc(header.length + values.byteLength);
  out.set(header, 0);
  out.set(new Uint8Array(values.buffer, values.byteOffset, values.byteLength), header.length);
  return out;
}

export interface WrittenShard {
  bytes: number;
  sha256: string;
}

/**
 * Writes a tar shard member by member to `file`, streamed, with its sha256 computed on the way. The
 * headers carry no time, owner or host: the same samples give the same bytes on every run and machine.
 */
export class ShardWriter {
  private readonly pack = tar.pack();
  private readonly hash = createHash('sha256');
  private bytes = 0;
  private readonly done: Promise<void>;

  constructor(file: string) {
    const count = new Transform({
      transform: (chunk: Buffer, _encoding, callback) => {
        this.hash.update(chunk);
        this.bytes += chunk.length;
        callback(null, chunk);
      },
    });
    // flush: the file is on disk before it is renamed into place and recorded as done.
    this.done = pipeline(this.pack, count, createWriteStream(file, { flush: true }));
    this.done.catch(() => {}); // awaited in finish(); a failure before then surfaces there or in add()
  }

  /** Adds one member; resolves once the tar stream has taken it (back-pressure from the file). */
  add(name: string, data: Uint8Array): Promise<void> {
    return new Promise((resolve, reject) => {
      this.pack.entry({ name, size: data.byteLength, mode: 0o644, mtime: new Date(0), uid: 0, gid: 0, uname: '', gname: '' }, Buffer.from(data), (err) =>
        err ? reject(err) : resolve(),
      );
    });
  }

  async finish(): Promise<WrittenShard> {
    this.pack.finalize();
    await this.done;
    return { bytes: this.bytes, sha256: this.hash.digest('hex') };
  }

  /** Stops writing; the caller removes the file. */
  async abort(): Promise<void> {
    this.pack.destroy(new Error('shard abandoned'));
    await this.done.catch(() => {});
  }
}
