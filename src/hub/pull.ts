// `fqtok pull` and FQ_PULL: a released tokenizer or hf:// checkpoint downloaded into the Hub cache,
// converted and installed into FQ_MODELS_DIR; or training weights downloaded into their caches.
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { Config } from '../config.ts';
import { fetchHubFile } from './hub-file.ts';
import { installedSource, installModel } from './install-model.ts';
import { parsePullTarget } from './model-catalogue.ts';
import { pullTrainingWeight, type PulledWeight } from './training-weights.ts';

export interface PullOptions {
  /** Install the model under this name. */
  as?: string;
  /** The checkpoint's model or EMA weights (`convert --weights`). */
  weights?: 'model' | 'ema';
  /** Leave a model already in FQ_MODELS_DIR alone, without asking the Hub (FQ_PULL at start-up). */
  onlyIfMissing?: boolean;
  /** Bytes of the file being downloaded (`what` says which), and its size when known. */
  onProgress?(what: string, bytes: number, total: number | undefined): void;
  /** A step begins: "converting ...". */
  onStep?(message: string): void;
  /** Stops the download or the conversion (a partial download is kept and continued next time). */
  signal?: AbortSignal;
}

export interface ModelPulled {
  kind: 'model';
  name: string;
  dir: string;
  /** False when the folder already held this checkpoint's conversion (or was there and onlyIfMissing). */
  installed: boolean;
  repo?: string;
  path?: string;
  revision?: string;
  commit?: string;
  sha256?: string;
  /** Bytes fetched now; resumedFrom > 0 when an interrupted download was continued. */
  fetched: number;
  resumedFrom: number;
}

export type PullResult = ModelPulled | { kind: 'weights'; weights: PulledWeight[] };

export async function pull(spec: string, config: Config, o: PullOptions = {}): Promise<PullResult> {
  const target = parsePullTarget(spec, o.as);
  if (target.kind === 'weights') {
    const weights: PulledWeight[] = [];
    for (const name of target.names) {
      weights.push(await pullTrainingWeight(name, config.hub, config.weightUrls, (bytes, total) => o.onProgress?.(name, bytes, total), o.signal));
    }
    return { kind: 'weights', weights };
  }
  const dir = path.join(config.modelsDir, target.name);
  if (o.onlyIfMissing && existsSync(path.join(dir, 'manifest.json'))) {
    return { kind: 'model', name: target.name, dir, installed: false, fetched: 0, resumedFrom: 0 };
  }
  const file = await fetchHubFile(target.ref, config.hub, (bytes, total) => o.onProgress?.(target.name, bytes, total), o.signal);
  const facts = { repo: file.repo, path: file.path, revision: file.revision, commit: file.commit, sha256: file.sha256 };
  const present = await installedSource(dir);
  if (present && present.repo === file.repo && present.path === file.path && present.sha256 === file.sha256) {
    return { kind: 'model', name: target.name, dir, installed: false, ...facts, fetched: file.fetched, resumedFrom: file.resumedFrom };
  }
  o.onStep?.(`converting ${target.name} (${file.repo}/${file.path} at ${file.commit.slice(0, 12)}) with ${config.python}`);
  const install = { modelsDir: config.modelsDir, name: target.name, python: config.python, weights: o.weights ?? 'model', endpoint: config.hub.endpoint };
  await installModel(file, { ...install, signal: o.signal });
  return { kind: 'model', name: target.name, dir, installed: true, ...facts, fetched: file.fetched, resumedFrom: file.resumedFrom };
}

/** The model name a pull target installs (undefined for training weights): FQ_PULL's first one is the default model. */
export function modelNameOf(spec: string): string | undefined {
  const target = parsePullTarget(spec);
  return target.kind === 'model' ? target.name : undefined;
}
