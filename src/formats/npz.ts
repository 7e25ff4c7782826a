// NPY/NPZ read and write for token grids, so that Python clients use plain numpy.load / np.savez.
import { zipSync } from 'fflate';
import yauzl from 'yauzl';
import { FqError, quoted } from '../errors.ts';

export interface IntArray {
  shape: number[];
  /** Values in C order. */
  data: Int32Array;
}

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

/** The .npy preamble (format 1.0) for a C-order array of `descr` (e.g. '<i4', '|u1') and `shape`. */
export function npyHeader(descr: string, shape: readonly number[]): Uint8Array {
  const dims = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${dims}, }`;
  // The whole preamble (10 bytes + header + newline) is padded to a multiple of 64 for aligned reads.
  const unpadded = 10 + header.length + 1;
  header += ' '.repeat((64 - (unpadded % 64)) % 64) + '\n';
  const out = new Uint8Array(10 + header.length);
  out.set(MAGIC, 0);
  out[6] = 1;
  out[7] = 0;
  new DataView(out.buffer).setUint16(8, header.length, true);
  for (let i = 0; i < header.length; i++) out[10 + i] = header.charCodeAt(i);
  return out;
}

/** One .npy file, little-endian int32 (or int64, the dtype torch indices have), C order. */
export function writeNpy(array: IntArray, dtype: 'int32' | 'int64' = 'int32'): Uint8Array {
  const header = npyHeader(dtype === 'int64' ? '<i8' : '<i4', array.shape);
  const values = dtype === 'int64' ? BigInt64Array.from(array.data, (v) => BigInt(v)) : array.data;
  const out = new Uint8Array(header.length + values.byteLength);
  out.set(header, 0);
  // typed arrays are little-endian on every platform Node runs on
  out.set(new Uint8Array(values.buffer, values.byteOffset, values.byteLength), header.length);
  return out;
}

const INTEGER_DTYPES: Record<string, { bytes: number; read: (v: DataView, o: number, le: boolean) => number }> = {
  i1: { bytes: 1, read: (v, o) => v.getInt8(o) },
  u1: { bytes: 1, read: (v, o) => v.getUint8(o) },
  i2: { bytes: 2, read: (v, o, le) => v.getInt16(o, le) },
  u2: { bytes: 2, read: (v, o, le) => v.getUint16(o, le) },
  i4: { bytes: 4, read: (v, o, le) => v.getInt32(o, le) },
  u4: { bytes: 4, read: (v, o, le) => v.getUint32(o, le) },
  i8: { bytes: 8, read: (v, o, le) => Number(v.getBigInt64(o, le)) },
  u8: { bytes: 8, read: (v, o, le) => Number(v.getBigUint64(o, le)) },
};

export interface NpyHeader {
  /** Byte order ('<', '>', '|' or '=') and type code, e.g. ['<', 'i8']. */
  descr: [string, string];
  shape: number[];
  /** Offset of the first value. */
  dataStart: number;
}

/** Parses a .npy preamble; `bytes` may be only the start of the file. */
export function readNpyHeader(bytes: Uint8Array, name: string): NpyHeader {
  const bad = (why: string) => new FqError('bad_tokens', `array ${quoted(name)}: ${why}`);
  if (bytes.length < 10 || MAGIC.some((b, i) => bytes[i] !== b)) throw bad('not a .npy array');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const major = bytes[6];
  const headerLength = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const headerStart = major === 1 ? 10 : 12;
  if (headerStart + headerLength > bytes.length) throw bad('truncated header');
  const header = Buffer.from(bytes.subarray(headerStart, headerStart + headerLength)).toString('latin1');
  const descr = /'descr':\s*'([<>|=])([a-z]\d+)'/.exec(header);
  const fortran = /'fortran_order':\s*(True|False)/.exec(header);
  const shapeMatch = /'shape':\s*\(([^)]*)\)/.exec(header);
  if (!descr || !fortran || !shapeMatch) throw bad('unreadable header');
  if (fortran[1] === 'True') throw bad('Fortran-ordered arrays are not supported; save with np.ascontiguousarray');
  const shape = shapeMatch[1]!.split(',').map((s) => s.trim()).filter(Boolean).map(Number);
  if (shape.some((d) => !Number.isInteger(d) || d < 0)) throw bad('bad shape');
  return { descr: [descr[1]!, descr[2]!], shape, dataStart: headerStart + headerLength };
}

/** Parses one .npy of any integer dtype; values outside int32 are clamped so range checks still catch them. */
export function readNpy(bytes: Uint8Array, name: string): IntArray {
  const { descr, shape, dataStart } = readNpyHeader(bytes, name);
  const dtype = INTEGER_DTYPES[descr[1]];
  if (!dtype) throw new FqError('bad_tokens', `array ${quoted(name)}: tokens must be integers, got dtype ${descr.join('')}`);
  const count = shape.reduce((a, b) => a * b, 1);
  if (bytes.length - dataStart < count * dtype.bytes) throw new FqError('bad_tokens', `array ${quoted(name)}: truncated data`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const littleEndian = descr[0] !== '>';
  const data = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    const v = dtype.read(view, dataStart + i * dtype.bytes, littleEndian);
    data[i] = Math.max(-2147483648, Math.min(2147483647, v));
  }
  return { shape, data };
}

/** ZIP entries carry a time; a fixed one makes the same codes the same bytes (numpy ignores it). */
const ENTRY_TIME = new Date(2000, 0, 1);

export function writeNpz(arrays: Record<string, IntArray>): Uint8Array {
  const files: Record<string, Uint8Array> = {};
  for (const [name, array] of Object.entries(arrays)) files[`${name}.npy`] = writeNpy(array);
  return zipSync(files, { level: 1, mtime: ENTRY_TIME });
}

export interface NpzLimits {
  /** Bytes the arrays may inflate to, all together: declared sizes are checked before anything inflates. */
  maxBytes: number;
  /** Values one array may hold, checked from its .npy header before its data is read (default: no limit). */
  maxValues?: number;
  /** What to say when an array is over `maxValues` (e.g. the request limit behind it). */
  tooManyValues?: (name: string, values: number) => string;
}

/** An NPZ of token arrays holds one per codebook; a few hundred is already far more than any tokenizer has. */
export const MAX_NPZ_ENTRIES = 256;
/** The smallest central directory entry (no name, no extra field): a claimed entry count must fit the body. */
const CENTRAL_ENTRY_BYTES = 46;

/**
 * Reads an .npz (stored or deflated, ZIP64 or not) without trusting it: the claimed entry count must fit
 * the body, declared sizes are checked against `limits` before anything is inflated, and inflation stops
 * at the size an entry declares (yauzl checks the stream against its header). Refusals are FqErrors:
 * `too_large` past a limit, `bad_tokens` for an archive that is not what it claims.
 */
export async function readNpz(bytes: Uint8Array, limits: NpzLimits): Promise<Record<string, IntArray>> {
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let zip: yauzl.ZipFile;
  try {
    zip = await yauzl.fromBufferPromise(buffer, { lazyEntries: true, validateEntrySizes: true });
  } catch (err) {
    throw unreadable(err);
  }
  try {
    const claimed = zip.entryCount;
    if (claimed * CENTRAL_ENTRY_BYTES > bytes.length) {
      throw new FqError('bad_tokens', `the body is not a readable .npz archive: it claims ${claimed} entries, more than its ${bytes.length} bytes can hold`);
    }
    if (claimed > MAX_NPZ_ENTRIES) {
      throw new FqError('bad_tokens', `the NPZ holds ${claimed} entries; an NPZ of token arrays has at most ${MAX_NPZ_ENTRIES}`);
    }
    const out: Record<string, IntArray> = {};
    let declared = 0;
    for (let entry = await nextEntry(zip); entry; entry = await nextEntry(zip)) {
      if (!entry.fileName.endsWith('.npy')) continue;
      declared += entry.uncompressedSize;
      if (declared > limits.maxBytes) throw new FqError('too_large', `the NPZ inflates to more than ${limits.maxBytes} bytes`);
      const name = entry.fileName.slice(0, -'.npy'.length);
      out[name] = readNpy(await inflateEntry(zip, entry, name, limits), name);
    }
    return out;
  } catch (err) {
    throw err instanceof FqError ? err : unreadable(err);
  } finally {
    zip.close();
  }
}

function unreadable(err: unknown): FqError {
  return new FqError('bad_tokens', `the body is not a readable .npz archive (${(err as Error).message})`);
}

function nextEntry(zip: yauzl.ZipFile): Promise<yauzl.Entry | undefined> {
  return new Promise((resolve, reject) => {
    const settle = (entry: yauzl.Entry | undefined, err?: Error) => {
      zip.off('entry', onEntry);
      zip.off('end', onEnd);
      zip.off('error', onError);
      if (err) reject(err);
      else resolve(entry);
    };
    const onEntry = (entry: yauzl.Entry) => settle(entry);
    const onEnd = () => settle(undefined);
    const onError = (err: Error) => settle(undefined, err);
    zip.on('entry', onEntry);
    zip.on('end', onEnd);
    zip.on('error', onError);
    zip.readEntry();
  });
}

/** The .npy preamble's length once its first 12 bytes are known, else undefined. */
function preambleLength(head: Uint8Array): number | undefined {
  if (head.length < 12) return undefined;
  const view = new DataView(head.buffer, head.byteOffset, head.byteLength);
  return head[6] === 1 ? 10 + view.getUint16(8, true) : 12 + view.getUint32(8, true);
}

/** One entry's bytes, exactly as many as it declares; its .npy header is checked against `maxValues` first. */
async function inflateEntry(zip: yauzl.ZipFile, entry: yauzl.Entry, name: string, limits: NpzLimits): Promise<Uint8Array> {
  const out = new Uint8Array(entry.uncompressedSize);
  let filled = 0;
  let checked = limits.maxValues === undefined;
  const stream = await zip.openReadStreamPromise(entry);
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      // yauzl errors first when the stream outgrows the declared size; this is the belt to its braces
      if (filled + chunk.length > out.length) throw new FqError('bad_tokens', `${quoted(entry.fileName)} inflates beyond the ${out.length} bytes it declares`);
      out.set(chunk, filled);
      filled += chunk.length;
      const preamble = checked ? undefined : preambleLength(out.subarray(0, filled));
      if (!checked && preamble !== undefined && (filled >= preamble || filled === out.length)) {
        const { shape } = readNpyHeader(out.subarray(0, filled), name);
        const values = shape.reduce((a, b) => a * b, 1);
        if (values > limits.maxValues!) {
          throw new FqError('too_large', limits.tooManyValues?.(name, values) ?? `array ${quoted(name)} holds ${values} values; at most ${limits.maxValues}`);
        }
        checked = true;
      }
    }
  } catch (err) {
    stream.destroy();
    if (err instanceof Error && /too many bytes in the stream/.test(err.message)) {
      throw new FqError('bad_tokens', `${quoted(entry.fileName)} inflates beyond the ${out.length} bytes it declares`);
    }
    throw err;
  }
  return out;
}
