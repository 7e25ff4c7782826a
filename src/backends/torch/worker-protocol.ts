// The torch worker's framing (see trainer/fqgan/serve_worker.py): uint32 LE header length, JSON header, raw tensor bytes.

export type WireDtype = 'float32' | 'int32' | 'uint8';
export type WireArray = Float32Array | Int32Array | Uint8Array;

export interface TensorInfo {
  name: string;
  dtype: WireDtype;
  shape: number[];
}

export interface FrameHeader {
  id?: number;
  op?: string;
  ok?: boolean;
  error?: string;
  bytes?: number;
  tensors?: TensorInfo[];
  [key: string]: unknown;
}

export interface Frame {
  header: FrameHeader;
  payload: Buffer;
}

const MAX_HEADER_BYTES = 1 << 20;
const ARRAYS: Record<WireDtype, { new (buffer: ArrayBuffer): WireArray }> = { float32: Float32Array, int32: Int32Array, uint8: Uint8Array };

/** The bytes of one frame: header (with its payload length) and the payload parts, in order. */
export function encodeFrame(header: FrameHeader, parts: WireArray[] = []): Buffer[] {
  const bytes = parts.reduce((n, p) => n + p.byteLength, 0);
  const json = Buffer.from(JSON.stringify({ ...header, bytes }), 'utf8');
  const length = Buffer.alloc(4);
  length.writeUInt32LE(json.length);
  return [length, json, ...parts.map((p) => Buffer.from(p.buffer, p.byteOffset, p.byteLength))];
}

/** Cuts a byte stream into frames. */
export class FrameReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private header: FrameHeader | undefined;

  push(chunk: Buffer): Frame[] {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const frames: Frame[] = [];
    for (;;) {
      if (!this.header) {
        if (this.buffered < 4) break;
        const length = this.peek(4).readUInt32LE(0);
        if (length > MAX_HEADER_BYTES) throw new Error(`worker sent a header of ${length} bytes: the stream is out of step`);
        if (this.buffered < 4 + length) break;
        this.take(4);
        this.header = JSON.parse(this.take(length).toString('utf8')) as FrameHeader;
      }
      const bytes = this.header.bytes ?? 0;
      if (this.buffered < bytes) break;
      frames.push({ header: this.header, payload: this.take(bytes) });
      this.header = undefined;
    }
    return frames;
  }

  private peek(count: number): Buffer {
    if (this.chunks[0]!.length < count) this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0]!.subarray(0, count);
  }

  private take(count: number): Buffer {
    if (count === 0) return Buffer.alloc(0);
    const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    const out = all.subarray(0, count);
    const rest = all.subarray(count);
    this.chunks = rest.length > 0 ? [rest] : [];
    this.buffered -= count;
    return out;
  }
}

/** The frame's tensors by name, each copied into an aligned array of its dtype. */
export function frameTensors(frame: Frame): Record<string, WireArray> {
  const out: Record<string, WireArray> = {};
  let offset = 0;
  for (const t of frame.header.tensors ?? []) {
    const Array = ARRAYS[t.dtype];
    if (!Array) throw new Error(`worker sent a tensor of dtype ${t.dtype}`);
    const count = t.shape.reduce((n, d) => n * d, 1);
    const bytes = count * (t.dtype === 'uint8' ? 1 : 4);
    const slice = frame.payload.subarray(offset, offset + bytes);
    const copy = new ArrayBuffer(bytes);
    new Uint8Array(copy).set(slice);
    out[t.name] = new Array(copy);
    offset += bytes;
  }
  if (offset !== frame.payload.length) throw new Error(`worker frame has ${frame.payload.length} payload bytes, its tensors ${offset}`);
  return out;
}
