// Downloads one URL into `<target>.incomplete`, continuing an interrupted download where it stopped
// (HTTP Range), then checks its size and checksums and renames it to `target`: a file under its final
// name is always complete and verified. @huggingface/hub's own download restarts from zero, follows a
// failed ranged request into a stream that never ends, and checks nothing; hence this module.
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rename, rm, stat, truncate } from 'node:fs/promises';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';

export interface DownloadOptions {
  url: string;
  /** The verified file's final path. */
  target: string;
  /** Expected size in bytes, when the source says it. */
  size?: number;
  /** Expected sha256 (hex): the Hub's LFS object id, or a pin. */
  sha256?: string;
  /** Expected git blob id (hex sha1) of a small file the Hub keeps in git rather than LFS. */
  gitSha1?: string;
  headers?: Record<string, string>;
  /** Bytes written so far (a resumed download starts at its offset), and the total when known. */
  onProgress?(bytes: number, total: number | undefined): void;
  /** A connection that sends nothing for this long is given up (the partial file is kept). */
  stallMs?: number;
  /** What the file is, for messages. */
  label?: string;
  /** Stops the transfer (the partial file is kept for the next attempt). */
  signal?: AbortSignal;
}

export interface Downloaded {
  bytes: number;
  sha256: string;
  /** Where the transfer began: > 0 when an earlier, interrupted download was continued. */
  resumedFrom: number;
}

export class DownloadError extends Error {
  constructor(
    message: string,
    /** A checksum or size mismatch: the partial file was removed, and retrying fetches the same bytes. */
    readonly corrupt = false,
  ) {
    super(message);
  }

  /** Worth another attempt (a dropped connection, a server error), which continues where this one stopped. */
  get retryable(): boolean {
    return !this.corrupt;
  }
}

const sizeOf = (file: string) => stat(file).then((s) => s.size, () => 0);

export async function downloadResumable(o: DownloadOptions): Promise<Downloaded> {
  const label = o.label ?? o.url;
  const partial = `${o.target}.incomplete`;
  await mkdir(path.dirname(o.target), { recursive: true });
  let offset = await sizeOf(partial);
  if (o.size !== undefined && offset > o.size) {
    await truncate(partial, 0);
    offset = 0;
  }
  const resumedFrom = offset;
  if (o.size === undefined || offset < o.size) offset = await transfer(o, partial, offset, label);
  const hashes = await digest(partial, o.gitSha1 !== undefined);
  const problem =
    (o.size !== undefined && offset !== o.size && `${offset} bytes, expected ${o.size}`) ||
    (o.sha256 !== undefined && hashes.sha256 !== o.sha256.toLowerCase() && `sha256 ${hashes.sha256}, expected ${o.sha256}`) ||
    (o.gitSha1 !== undefined && hashes.gitSha1 !== o.gitSha1.toLowerCase() && `git blob id ${hashes.gitSha1}, expected ${o.gitSha1}`);
  if (problem) {
    await rm(partial, { force: true });
    throw new DownloadError(`${label}: the downloaded file has ${problem}; it was removed and nothing was installed`, true);
  }
  await rename(partial, o.target);
  return { bytes: offset, sha256: hashes.sha256, resumedFrom };
}

/** Fetches from `offset` to the end, appending to `partial`; returns the file's size afterwards. */
async function transfer(o: DownloadOptions, partial: string, offset: number, label: string): Promise<number> {
  const stall = new AbortController();
  const stallMs = o.stallMs ?? 60_000;
  let timer = setTimeout(() => stall.abort(), stallMs);
  const alive = () => {
    clearTimeout(timer);
    timer = setTimeout(() => stall.abort(), stallMs);
  };
  try {
    const response = await fetch(o.url, {
      headers: { ...o.headers, ...(offset > 0 ? { range: `bytes=${offset}-` } : {}) },
      signal: o.signal ? AbortSignal.any([stall.signal, o.signal]) : stall.signal,
    });
    if (offset > 0 && response.status === 200) {
      offset = 0; // the server ignored the range: start over rather than append the whole file again
      await truncate(partial, 0);
    } else if (offset > 0 && response.status === 416) {
      await truncate(partial, 0); // nothing left to send from there: the partial file is not a prefix
      throw new DownloadError(`${label}: the server refused to continue at byte ${offset}; run again to start over`);
    } else if (!response.ok) {
      throw new DownloadError(`${label}: ${o.url} answered ${response.status} ${response.statusText}`);
    } else if (offset > 0) {
      const start = Number(/^bytes (\d+)-/.exec(response.headers.get('content-range') ?? '')?.[1]);
      if (start !== offset) throw new DownloadError(`${label}: asked to continue at byte ${offset}, the server answered from ${start}`);
    }
    if (!response.body) throw new DownloadError(`${label}: ${o.url} answered without a body`);
    const total = o.size ?? contentTotal(response, offset);
    let written = offset;
    o.onProgress?.(written, total);
    const count = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        alive();
        written += chunk.length;
        o.onProgress?.(written, total);
        done(null, chunk);
      },
    });
    try {
      await pipeline(Readable.fromWeb(response.body as never), count, createWriteStream(partial, { flags: offset > 0 ? 'a' : 'w' }));
    } catch (err) {
      const why = stall.signal.aborted ? `nothing arrived for ${stallMs / 1000} s` : (err as Error).message;
      // What reached the file (chunks still buffered when the stream failed are not in it).
      const kept = await sizeOf(partial);
      throw new DownloadError(`${label}: the download stopped after ${kept} bytes (${why}); run again to continue from there`);
    }
    return written;
  } catch (err) {
    if (err instanceof DownloadError) throw err;
    const why = stall.signal.aborted ? `nothing arrived for ${stallMs / 1000} s` : causeOf(err);
    throw new DownloadError(`${label}: cannot download ${o.url} (${why})`);
  } finally {
    clearTimeout(timer);
  }
}

function contentTotal(response: Response, offset: number): number | undefined {
  const range = /\/(\d+)$/.exec(response.headers.get('content-range') ?? '')?.[1];
  if (range) return Number(range);
  const length = Number(response.headers.get('content-length'));
  return Number.isFinite(length) && length > 0 ? offset + length : undefined;
}

/** fetch's "fetch failed" hides the reason (ECONNREFUSED, ENOTFOUND...) in its cause. */
export function causeOf(err: unknown): string {
  const e = err as Error & { cause?: { code?: string; message?: string } };
  return e.cause?.code ?? e.cause?.message ?? e.message;
}

async function digest(file: string, withGitSha1: boolean): Promise<{ sha256: string; gitSha1?: string }> {
  const sha256 = createHash('sha256');
  // A git blob id hashes "blob <size>\0" and then the content.
  const sha1 = withGitSha1 ? createHash('sha1').update(`blob ${await sizeOf(file)}\0`) : undefined;
  await pipeline(createReadStream(file), async function (source: AsyncIterable<Buffer>) {
    for await (const chunk of source) {
      sha256.update(chunk);
      sha1?.update(chunk);
    }
  });
  return { sha256: sha256.digest('hex'), gitSha1: sha1?.digest('hex') };
}
