// One file of a Hugging Face Hub model repository in the Hub's own cache layout (what huggingface_hub,
// transformers and hf-hub read and write): blobs/<sha256 or git blob id>, snapshots/<commit>/<path> ->
// that blob, refs/<branch or tag> = commit. @huggingface/hub answers the metadata (the revision's
// commit, the file's size and checksum); the bytes come through resumable-download.ts.
import { getRepoFolderName, HubApiError, modelInfo, pathsInfo } from '@huggingface/hub';
import { mkdir, readFile, readlink, realpath, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileSha256 } from '../serving/model-check.ts';
import type { HubSettings } from './hub-settings.ts';
import { causeOf, DownloadError, downloadResumable } from './resumable-download.ts';

export interface HubFileRef {
  /** owner/name */
  repo: string;
  /** The file's path in the repository. */
  path: string;
  /** Branch, tag or commit. */
  revision: string;
  /** A pinned sha256: the file must have it. */
  sha256?: string;
}

export interface HubFile {
  /** The file in the cache's snapshot of `commit`. */
  file: string;
  repo: string;
  path: string;
  revision: string;
  /** The commit `revision` resolved to. */
  commit: string;
  sha256: string;
  bytes: number;
  /** Bytes fetched now (0 when the cache had it); `resumedFrom` > 0 when an interrupted download was continued. */
  fetched: number;
  resumedFrom: number;
}

export type Progress = (bytes: number, total: number | undefined) => void;

export class HubError extends Error {
  constructor(
    message: string,
    /** The Hub could not be reached: another attempt may succeed. */
    readonly retryable = false,
  ) {
    super(message);
  }
}

const COMMIT = /^[0-9a-f]{40}$/;

export const describeRef = (r: HubFileRef) => `${r.repo}/${r.path}@${r.revision}`;

export async function fetchHubFile(ref: HubFileRef, settings: HubSettings, onProgress?: Progress, signal?: AbortSignal): Promise<HubFile> {
  const storage = path.join(settings.cacheDir, getRepoFolderName({ name: ref.repo, type: 'model' }));
  if (settings.offline) return fromCache(ref, storage);
  const credentials = {
    hubUrl: settings.endpoint,
    ...(settings.token ? { accessToken: settings.token } : {}),
    ...(signal ? { fetch: ((url, init) => fetch(url, { ...init, signal })) as typeof fetch } : {}),
  };
  const label = describeRef(ref);
  const commit = COMMIT.test(ref.revision)
    ? ref.revision
    : await hubCall(label, settings, () => modelInfo({ name: ref.repo, revision: ref.revision, additionalFields: ['sha'], ...credentials })).then((m) => m.sha);
  if (!commit || !COMMIT.test(commit)) throw new HubError(`${label}: the Hub did not say which commit '${ref.revision}' is`);
  const [info] = await hubCall(label, settings, () => pathsInfo({ repo: ref.repo, paths: [ref.path], revision: commit, ...credentials }));
  if (!info || info.type !== 'file') throw new HubError(`${label}: no such file in ${ref.repo} at ${ref.revision} (${commit.slice(0, 12)})`);
  const sha256 = info.lfs?.oid;
  if (ref.sha256 && sha256 && sha256 !== ref.sha256) {
    throw new HubError(`${label}: the Hub's file has sha256 ${sha256}, the catalogue pins ${ref.sha256}; nothing was downloaded or installed`);
  }
  const blobName = sha256 ?? info.oid; // as huggingface_hub names blobs: the LFS sha256, or the git blob id
  if (!blobName) throw new HubError(`${label}: the Hub gave no checksum for this file`);
  const pointer = path.join(storage, 'snapshots', commit, ref.path);
  const blob = path.join(storage, 'blobs', blobName);
  let fetched = 0;
  let resumedFrom = 0;
  if (!(await exists(pointer))) {
    if (!(await exists(blob))) {
      const done = await downloadResumable({
        url: `${settings.endpoint}/${ref.repo}/resolve/${commit}/${ref.path.split('/').map(encodeURIComponent).join('/')}`,
        target: blob,
        size: info.size,
        sha256: sha256 ?? ref.sha256,
        gitSha1: sha256 ? undefined : info.oid,
        headers: settings.token ? { authorization: `Bearer ${settings.token}` } : {},
        onProgress,
        label,
        signal,
      });
      fetched = done.bytes - done.resumedFrom;
      resumedFrom = done.resumedFrom;
    }
    await link(blob, pointer);
  }
  if (!COMMIT.test(ref.revision)) await writeRef(storage, ref.revision, commit);
  const bytes = (await stat(pointer)).size;
  const file = { file: pointer, repo: ref.repo, path: ref.path, revision: ref.revision, commit, bytes, fetched, resumedFrom };
  return { ...file, sha256: sha256 ?? (await fileSha256(pointer)) };
}

/** HF_HUB_OFFLINE: the revision's commit from refs/, the file from its snapshot; nothing is fetched. */
async function fromCache(ref: HubFileRef, storage: string): Promise<HubFile> {
  const label = describeRef(ref);
  const missing = `HF_HUB_OFFLINE is set and ${label} is not in the Hugging Face cache (${storage}); pull it once with network access`;
  const commit = COMMIT.test(ref.revision)
    ? ref.revision
    : (await readFile(path.join(storage, 'refs', ref.revision), 'utf8').catch(() => '')).trim();
  if (!COMMIT.test(commit)) throw new HubError(missing);
  const pointer = path.join(storage, 'snapshots', commit, ref.path);
  if (!(await exists(pointer))) throw new HubError(missing);
  const blobName = path.basename(await realpath(pointer));
  const sha256 = /^[0-9a-f]{64}$/.test(blobName) ? blobName : await fileSha256(pointer);
  if (ref.sha256 && sha256 !== ref.sha256) throw new HubError(`${label}: the cached file has sha256 ${sha256}, the catalogue pins ${ref.sha256}`);
  return { file: pointer, repo: ref.repo, path: ref.path, revision: ref.revision, commit, sha256, bytes: (await stat(pointer)).size, fetched: 0, resumedFrom: 0 };
}

/** Calls the Hub's API; its errors become one line that says what to do. */
async function hubCall<T>(label: string, settings: HubSettings, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    if (err instanceof HubApiError) {
      if (err.statusCode === 401 || err.statusCode === 403) {
        throw new HubError(`${label}: the Hub refused access (${err.statusCode})${settings.token ? ': HF_TOKEN lacks access to this repository' : '; set HF_TOKEN for a gated or private repository'}`);
      }
      if (err.statusCode === 404) throw new HubError(`${label}: not found on ${settings.endpoint} (a wrong name or revision, or a private repository: set HF_TOKEN)`);
      throw new HubError(`${label}: the Hub answered ${err.statusCode}: ${err.message}`);
    }
    if (err instanceof DownloadError || err instanceof HubError) throw err;
    throw new HubError(`${label}: cannot reach ${settings.endpoint} (${causeOf(err)}); set HF_HUB_OFFLINE=1 to use the cache alone`, true);
  }
}

const exists = (file: string) => stat(file).then(() => true, () => false);

/** snapshots/<commit>/<path> -> ../../blobs/<blob>, relative as huggingface_hub makes it. */
async function link(blob: string, pointer: string): Promise<void> {
  await mkdir(path.dirname(pointer), { recursive: true });
  const target = path.relative(path.dirname(pointer), blob);
  if ((await readlink(pointer).catch(() => undefined)) === target) return;
  await rm(pointer, { force: true }); // a dangling link left by a removed blob
  await symlink(target, pointer);
}

async function writeRef(storage: string, revision: string, commit: string): Promise<void> {
  const file = path.join(storage, 'refs', revision);
  if ((await readFile(file, 'utf8').catch(() => '')).trim() === commit) return;
  await mkdir(path.dirname(file), { recursive: true });
  const temp = `${file}.${process.pid}.tmp`;
  await writeFile(temp, commit);
  await rename(temp, file);
}
