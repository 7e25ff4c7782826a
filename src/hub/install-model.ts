// A pulled checkpoint becomes a served model: converted by the trainer's exporter into a dot-named
// folder inside FQ_MODELS_DIR, its Hub provenance added to the manifest, then renamed into place
// (README, Hot pickup: how a publisher writes a version), so a running server picks it up whole.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { childEnv, launcherArgs, TRAINER_DIR } from '../python-launcher.ts';
import type { HubFile } from './hub-file.ts';

export interface HubSource {
  repo: string;
  path: string;
  revision: string;
  commit: string;
  sha256: string;
  endpoint: string;
}

/** The Hub provenance a model folder records (manifest `source.hub`), if it came from the Hub. */
export async function installedSource(modelDir: string): Promise<HubSource | undefined> {
  try {
    const manifest = JSON.parse(await readFile(path.join(modelDir, 'manifest.json'), 'utf8')) as { source?: { hub?: HubSource } };
    return manifest.source?.hub;
  } catch {
    return undefined;
  }
}

export interface InstallOptions {
  modelsDir: string;
  name: string;
  python: string;
  /** Which weights of the checkpoint: the model's or their EMA. */
  weights: 'model' | 'ema';
  endpoint: string;
  /** Ends the exporter. */
  signal?: AbortSignal;
}

/** Converts `file` and installs it as FQ_MODELS_DIR/<name> (replacing what was there); returns the folder. */
export async function installModel(file: HubFile, o: InstallOptions): Promise<string> {
  const target = path.join(o.modelsDir, o.name);
  const staging = path.join(o.modelsDir, `.pull-${o.name}-${randomBytes(4).toString('hex')}`);
  await mkdir(staging, { recursive: true });
  try {
    const converted = path.join(staging, 'model');
    await runExporter(o.python, ['--checkpoint', file.file, '--out', converted, '--weights', o.weights], o.signal);
    const manifestFile = path.join(converted, 'manifest.json');
    const manifest = JSON.parse(await readFile(manifestFile, 'utf8')) as { source: Record<string, unknown> };
    const hub: HubSource = { repo: file.repo, path: file.path, revision: file.revision, commit: file.commit, sha256: file.sha256, endpoint: o.endpoint };
    manifest.source = { ...manifest.source, hub };
    // Written beside and renamed: the folder is still hidden, but a manifest is never seen half-written.
    await writeFile(`${manifestFile}.tmp`, JSON.stringify(manifest, null, 2) + '\n');
    await rename(`${manifestFile}.tmp`, manifestFile);
    // Swap: the old folder aside, the new one in (the pickup does not unload a model missing for one scan).
    const previous = path.join(staging, 'previous');
    await rename(target, previous).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
    });
    await rename(converted, target);
    return target;
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

/** `python -m fqgan.export ...` (ended with this process); its one-line error becomes the thrown message. */
function runExporter(python: string, args: string[], signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(python, launcherArgs('fqgan.export', args), { cwd: TRAINER_DIR, env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'], signal });
    let stderr = '';
    child.stdout.resume();
    child.stderr.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-8000)));
    child.on('error', (err) => {
      if (signal?.aborted) return reject(new Error('the conversion was stopped'));
      reject(new Error(`cannot run ${python} to convert the checkpoint (FQ_PYTHON: an interpreter with torch): ${err.message}`));
    });
    child.on('close', (code, signal) => {
      if (code === 0) return resolve();
      const reason = /fqgan\.export: error: (.*)/.exec(stderr)?.[1] ?? (stderr.trim().split('\n').at(-1) || `exit ${code ?? signal}`);
      reject(new Error(`converting the checkpoint failed: ${reason}`));
    });
  });
}
