// Whether a model folder is complete: its manifest is valid and every file it lists is there in full.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { ManifestError, readManifest, type Manifest } from '../backends/manifest.ts';

export async function fileSha256(file: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(file), hash);
  return hash.digest('hex');
}

/**
 * The manifest of `dir` once the folder is complete: every file of its `files` list at its size and
 * sha256, and the files it runs (encoder, decoder) present. A folder being copied
 * file by file, or a manifest written before its files, fails here with the first thing missing;
 * `verified` says whether checksums vouched for the files (manifests written before `files` existed
 * have none: their folders are trusted once they stop changing, see model-pickup.ts).
 */
export async function checkModelFolder(dir: string): Promise<{ manifest: Manifest; verified: boolean }> {
  const manifest = await readManifest(dir);
  // The serving weights (torch backend only) are not needed to serve with onnx; a listed file is, below.
  for (const file of [manifest.encoder.file, manifest.decoder.file]) {
    const size = await stat(path.join(dir, file)).then((s) => (s.isFile() ? s.size : undefined), () => undefined);
    if (size === undefined) throw new ManifestError(`${dir}: ${file} is missing`);
  }
  if (!manifest.files) return { manifest, verified: false };
  for (const [file, { bytes, sha256 }] of Object.entries(manifest.files)) {
    const full = path.join(dir, file);
    const size = await stat(full).then((s) => s.size, () => undefined);
    if (size === undefined) throw new ManifestError(`${dir}: ${file} is missing`);
    if (size !== bytes) throw new ManifestError(`${dir}: ${file} has ${size} bytes, the manifest says ${bytes}`);
    const digest = await fileSha256(full);
    if (digest !== sha256) throw new ManifestError(`${dir}: ${file} has sha256 ${digest}, the manifest says ${sha256}`);
  }
  return { manifest, verified: true };
}

/** A cheap summary of a folder's own files (names, sizes, modification times): it changes when anything in it is written. */
export async function folderFingerprint(dir: string): Promise<string> {
  const names = (await readdir(dir).catch(() => [] as string[])).sort();
  const parts = await Promise.all(
    names.map(async (name) => {
      const s = await stat(path.join(dir, name)).catch(() => undefined);
      if (s?.isDirectory()) return undefined; // a version folder beside a flat model's files is a model of its own
      return s ? `${name}:${s.size}:${s.mtimeMs}` : `${name}:gone`;
    }),
  );
  return parts.filter(Boolean).join('|');
}
