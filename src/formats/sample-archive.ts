// A streamed evaluation archive: one .npz holding `arr_0`, uint8 [N, H, W, 3], written as images arrive.
// It is what the reference's create_npz_from_sample_folder writes and what the ADM evaluation suite reads.
import { PassThrough, type Readable } from 'node:stream';
import { unzipSync } from 'fflate';
import yazl from 'yazl';
import { npyHeader, readNpyHeader } from './npz.ts';

export interface SampleArchiveShape {
  count: number;
  height: number;
  width: number;
}

export interface SampleArchive {
  /** The archive's bytes as they are produced; it errors (and never ends) if the archive is destroyed. */
  readonly output: Readable;
  /** The archive's exact size in bytes, known before the first image (stored entry, sizes known). */
  readonly totalBytes: number;
  /** Appends whole images, uint8 HWC one after another; resolves when the archive can take more. */
  write(rgb: Uint8Array): Promise<void>;
  /** Ends the archive; throws if fewer or more images were written than declared. */
  end(): void;
  /** Abandons the archive: no central directory is written, so no reader takes it for a complete file. */
  destroy(err: Error): void;
}

/**
 * Stored (uncompressed: pixels barely compress and the evaluator reads them in batches) and always ZIP64,
 * so that 50,000 samples at 256 px (9.8 GB) work and small archives exercise the very same format.
 * numpy reads it through Python's zipfile, which follows the central directory's sizes.
 */
export function createSampleArchive(shape: SampleArchiveShape): SampleArchive {
  const header = npyHeader('|u1', [shape.count, shape.height, shape.width, 3]);
  const bytesPerImage = shape.height * shape.width * 3;
  const entrySize = header.length + shape.count * bytesPerImage;
  const zip = new yazl.ZipFile();
  const entry = new PassThrough({ highWaterMark: 4 * bytesPerImage });
  zip.addReadStream(entry, 'arr_0.npy', { compress: false, size: entrySize, forceZip64Format: true, mtime: new Date() });
  let totalBytes = -1;
  (zip.end as (options: { forceZip64Format: boolean }, sized: (bytes: number) => void) => void)({ forceZip64Format: true }, (bytes) => {
    totalBytes = bytes;
  });
  const output = zip.outputStream as Readable;
  entry.write(header);
  let written = 0;
  let failed: Error | undefined;
  entry.on('error', (err) => {
    failed ??= err;
  });

  return {
    output,
    get totalBytes() {
      return totalBytes;
    },
    async write(rgb) {
      if (failed) throw failed;
      if (rgb.length % bytesPerImage !== 0) throw new Error(`${rgb.length} bytes are not whole ${shape.height}x${shape.width} images`);
      written += rgb.length / bytesPerImage;
      if (written > shape.count) throw new Error(`more than the ${shape.count} images the archive was declared with`);
      if (entry.write(rgb)) return;
      // Wait until the consumer has read enough, or the archive was given up.
      await new Promise<void>((resolve, reject) => {
        const done = () => {
          entry.off('drain', done);
          output.off('close', done);
          if (failed || output.destroyed) reject(failed ?? new Error('the archive was closed before it was complete'));
          else resolve();
        };
        entry.on('drain', done);
        output.on('close', done);
      });
    },
    end() {
      if (written !== shape.count) throw new Error(`${written} images written; the archive was declared with ${shape.count}`);
      entry.end();
    },
    destroy(err) {
      failed ??= err;
      entry.destroy(err);
      output.destroy(err);
    },
  };
}

/** Reads a small archive back (a server's answer to one request): `arr_0`'s shape and its pixels. */
export function readSampleArchive(bytes: Uint8Array): { shape: number[]; rgb: Uint8Array } {
  const npy = unzipSync(bytes, { filter: (file) => file.name === 'arr_0.npy' })['arr_0.npy'];
  if (!npy) throw new Error('the archive holds no arr_0.npy');
  const { descr, shape, dataStart } = readNpyHeader(npy, 'arr_0');
  if (descr[1] !== 'u1' || shape.length !== 4 || shape[3] !== 3) throw new Error(`arr_0 is ${descr.join('')} [${shape.join(', ')}], not uint8 [N, H, W, 3]`);
  return { shape, rgb: npy.subarray(dataStart) };
}
