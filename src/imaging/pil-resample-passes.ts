// Runs Pillow's resampling passes in WebAssembly SIMD (assembly/pil-resample.ts): memory layout and calls.
//
// The module is compiled once per thread; the image, the coefficient tables and every intermediate
// image of one crop live in its linear memory, so a crop copies in the pixels it reads once and
// copies out the result once. Same bytes as Pillow's ImagingResampleHorizontal/Vertical_8bpc: the
// arithmetic and why it is exact are described in the AssemblyScript source.
//
// Node >= 20 always has wasm SIMD (it is in the engines range of package.json), so there is no
// plain-JS copy of these loops to fall back on.
import { readFileSync } from 'node:fs';
import type { RgbImage } from './rgb-image.ts';

/** Fraction bits of the weights: 32 bits minus 8 for the result, minus 2 of headroom for bicubic's negative lobes. */
export const PRECISION_BITS = 22;
/** 0.5 in fixed point: every sum starts here, so the final shift rounds instead of truncating. */
export const HALF = 1 << (PRECISION_BITS - 1);

/** For each output pixel along one axis: which input pixels it reads and their fixed-point weights. */
export interface ResampleKernel {
  /** Weights stored per output pixel (Pillow's ksize); only the first `count[i]` are used. */
  taps: number;
  /** First input pixel read by each output pixel. */
  first: Int32Array;
  count: Int32Array;
  weights: Int32Array;
}

/** The committed build of assembly/pil-resample.ts (`npm run build:wasm`). */
export const WASM_URL = new URL('./pil-resample.wasm', import.meta.url);

interface PassExports {
  memory: WebAssembly.Memory;
  heapBase(): number;
  resampleRows(src: number, srcStride: number, rowCount: number, first: number, count: number, weights: number, taps: number, outWidth: number, out: number, scratch: number): void;
  resampleColumns(src: number, srcStride: number, rowBytes: number, first: number, count: number, weights: number, taps: number, outRows: number, out: number): void;
  halvePairs(src: number, srcStride: number, outWidth: number, outHeight: number, out: number): void;
}

/** Vector loads and stores reach up to 18 bytes past a buffer's last pixel; every buffer is followed by this many spare bytes. */
const SLACK = 32;
const PAGE = 65536;
/**
 * A crop of a 50-megapixel photo needs about 200 MB of wasm memory, which a wasm memory never gives
 * back; above this size the instance is dropped after the crop, so an idle worker does not keep it.
 */
const RETAINED_BYTES = 64 << 20;

let compiled: WebAssembly.Module | null = null;
let instance: PassExports | null = null;

function passes(): PassExports {
  if (instance) return instance;
  compiled ??= new WebAssembly.Module(readFileSync(WASM_URL));
  instance = new WebAssembly.Instance(compiled).exports as unknown as PassExports;
  return instance;
}

/** An image in wasm memory: `height` rows of `width` pixels, `stride` bytes apart (a view of a larger one when stride > width * 3). */
export interface WasmImage {
  ptr: number;
  width: number;
  height: number;
  stride: number;
}

/**
 * The memory of one crop: buffers are handed out front to back and all released when the crop ends
 * (`PassArena.run`). Views of the memory are made afresh after each allocation, because growing the
 * memory detaches the old ArrayBuffer.
 */
export class PassArena {
  private next: number;

  private constructor(private readonly wasm: PassExports) {
    this.next = wasm.heapBase();
  }

  /** Calls `body` with an empty arena; the memory is reused by the next crop (or dropped when large). */
  static run<T>(body: (arena: PassArena) => T): T {
    const arena = new PassArena(passes());
    try {
      return body(arena);
    } finally {
      if (arena.wasm.memory.buffer.byteLength > RETAINED_BYTES) instance = null;
    }
  }

  private alloc(bytes: number): number {
    const ptr = this.next;
    this.next = (ptr + bytes + SLACK + 15) & ~15;
    const { memory } = this.wasm;
    if (this.next > memory.buffer.byteLength) memory.grow(Math.ceil((this.next - memory.buffer.byteLength) / PAGE));
    return ptr;
  }

  /** A packed copy of the width x height block of `image` whose top-left pixel is (left, top). */
  copyIn(image: RgbImage, left: number, top: number, width: number, height: number): WasmImage {
    const rowBytes = width * 3;
    const ptr = this.alloc(rowBytes * height);
    const bytes = new Uint8Array(this.wasm.memory.buffer);
    for (let y = 0; y < height; y++) {
      const start = ((top + y) * image.width + left) * 3;
      bytes.set(image.data.subarray(start, start + rowBytes), ptr + y * rowBytes);
    }
    return { ptr, width, height, stride: rowBytes };
  }

  /** The image's pixels, packed, in a buffer of their own. */
  copyOut(image: WasmImage): RgbImage {
    const rowBytes = image.width * 3;
    const out = new Uint8Array(rowBytes * image.height);
    const bytes = new Uint8Array(this.wasm.memory.buffer);
    for (let y = 0; y < image.height; y++) {
      const start = image.ptr + y * image.stride;
      out.set(bytes.subarray(start, start + rowBytes), y * rowBytes);
    }
    return { data: out, width: image.width, height: image.height };
  }

  private kernelIn(kernel: ResampleKernel): { first: number; count: number; weights: number } {
    const first = this.alloc(kernel.first.byteLength);
    const count = this.alloc(kernel.count.byteLength);
    const weights = this.alloc(kernel.weights.byteLength);
    const { buffer } = this.wasm.memory;
    new Int32Array(buffer, first, kernel.first.length).set(kernel.first);
    new Int32Array(buffer, count, kernel.count.length).set(kernel.count);
    new Int32Array(buffer, weights, kernel.weights.length).set(kernel.weights);
    return { first, count, weights };
  }

  /** Horizontal pass over rows [rowStart, rowEnd) of `image`: one output pixel per kernel entry. */
  resampleRows(image: WasmImage, rowStart: number, rowEnd: number, kernel: ResampleKernel): WasmImage {
    const width = kernel.first.length;
    const height = rowEnd - rowStart;
    const k = this.kernelIn(kernel);
    const scratch = this.alloc(width * ((kernel.taps + 1) >> 1) * 32);
    const out = this.alloc(width * height * 3);
    this.wasm.resampleRows(image.ptr + rowStart * image.stride, image.stride, height, k.first, k.count, k.weights, kernel.taps, width, out, scratch);
    return { ptr: out, width, height, stride: width * 3 };
  }

  /** Vertical pass over every column of `image`: one output row per kernel entry. */
  resampleColumns(image: WasmImage, kernel: ResampleKernel): WasmImage {
    const height = kernel.first.length;
    const rowBytes = image.width * 3;
    const k = this.kernelIn(kernel);
    const out = this.alloc(rowBytes * height);
    this.wasm.resampleColumns(image.ptr, image.stride, rowBytes, k.first, k.count, k.weights, kernel.taps, height, out);
    return { ptr: out, width: image.width, height, stride: rowBytes };
  }

  /** Exact BOX halving of the 2 * outWidth x 2 * outHeight block at (left, top), both passes at once. */
  halvePairs(image: WasmImage, left: number, top: number, outWidth: number, outHeight: number): WasmImage {
    const out = this.alloc(outWidth * outHeight * 3);
    this.wasm.halvePairs(image.ptr + top * image.stride + left * 3, image.stride, outWidth, outHeight, out);
    return { ptr: out, width: outWidth, height: outHeight, stride: outWidth * 3 };
  }

  /** The width x height block at (left, top), without copying. */
  window(image: WasmImage, left: number, top: number, width: number, height: number): WasmImage {
    return { ptr: image.ptr + top * image.stride + left * 3, width, height, stride: image.stride };
  }
}
