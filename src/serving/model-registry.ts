// The model registry: which model versions are served, each a ServedModel, and the default model.
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { FqError } from '../errors.ts';
import { logger } from '../logger.ts';
import { modelInfo } from '../metrics.ts';
import { readManifest } from '../backends/manifest.ts';
import type { BackendHealth, BackendInfo } from '../backends/backend.ts';
import { createBackend, type BackendOptions } from '../backends/backend-factory.ts';
import { ServedModel, type BatchingOptions, type ModelRef } from './served-model.ts';

export interface RegistryOptions extends BatchingOptions, BackendOptions {
  defaultModel?: string;
}

export interface ModelSummary {
  name: string;
  version: number;
  dir: string;
  default: boolean;
  executionProvider: string;
  backend: BackendInfo;
  health: BackendHealth;
}

const infoLabels = (t: ServedModel) => ({ model: t.model.name, version: String(t.model.version), execution_provider: t.executionProvider });

export class ModelRegistry {
  /** name -> version -> tokenizer */
  private readonly models = new Map<string, Map<number, ServedModel>>();
  private defaultName: string | undefined;

  constructor(private readonly options: RegistryOptions) {
    this.defaultName = options.defaultModel;
  }

  /** Loads every sub-folder of `modelsDir` that holds a manifest.json, as version 1 of its folder name. */
  async loadModelsDir(modelsDir: string): Promise<void> {
    let entries: string[] = [];
    try {
      entries = (await readdir(modelsDir)).sort();
    } catch {
      logger.warn({ modelsDir }, 'models directory not found; serving no shipped models');
      return;
    }
    for (const name of entries) {
      const dir = path.join(modelsDir, name);
      const isModel = await stat(path.join(dir, 'manifest.json')).then((s) => s.isFile(), () => false);
      if (isModel) await this.load(name, 1, dir);
    }
    if (this.defaultName && !this.models.has(this.defaultName)) {
      throw new Error(`FQ_DEFAULT_MODEL=${this.defaultName} is not among the models in ${modelsDir}`);
    }
  }

  /** Loads a model folder and serves it as `name` version `version`. */
  async load(name: string, version: number, dir: string): Promise<ServedModel> {
    const manifest = await readManifest(dir);
    const backend = await createBackend(dir, manifest, `${name}@${version}`, this.options);
    const ref: ModelRef = { name, version, dir, manifest };
    const tokenizer = new ServedModel(ref, backend, this.options);
    let versions = this.models.get(name);
    if (!versions) this.models.set(name, (versions = new Map()));
    const previous = versions.get(version);
    versions.set(version, tokenizer);
    if (previous) {
      modelInfo.remove(infoLabels(previous));
      await previous.close();
    }
    modelInfo.set(infoLabels(tokenizer), 1);
    this.defaultName ??= name;
    logger.info({ model: name, version, dir, executionProvider: backend.executionProvider, ...backend.info }, 'model loaded');
    return tokenizer;
  }

  /** Stops serving one version; in-flight work on it finishes first. */
  async unload(name: string, version: number): Promise<void> {
    const versions = this.models.get(name);
    const tokenizer = versions?.get(version);
    if (!versions || !tokenizer) return;
    versions.delete(version);
    if (versions.size === 0) this.models.delete(name);
    modelInfo.remove(infoLabels(tokenizer));
    await tokenizer.close();
  }

  get defaultModel(): string | undefined {
    return this.defaultName;
  }

  /** The tokenizer for `name` (default model when omitted), at `version` (latest when omitted). */
  get(name?: string, version?: number): ServedModel {
    const wanted = name ?? this.defaultName;
    if (!wanted) throw new FqError('unknown_model', 'no model is loaded');
    const versions = this.models.get(wanted);
    if (!versions) {
      throw new FqError('unknown_model', `unknown model '${wanted}'; known: ${[...this.models.keys()].join(', ') || 'none'}`);
    }
    const v = version ?? Math.max(...versions.keys());
    const tokenizer = versions.get(v);
    if (!tokenizer) {
      throw new FqError('unknown_model', `model '${wanted}' has no version ${v}; versions: ${[...versions.keys()].join(', ')}`);
    }
    return tokenizer;
  }

  list(): ModelSummary[] {
    const out: ModelSummary[] = [];
    for (const [name, versions] of [...this.models.entries()].sort(([a], [b]) => a.localeCompare(b))) {
      for (const [version, t] of [...versions.entries()].sort(([a], [b]) => a - b)) {
        out.push({
          name,
          version,
          dir: t.model.dir,
          default: name === this.defaultName,
          executionProvider: t.executionProvider,
          backend: t.backendInfo,
          health: t.health(),
        });
      }
    }
    return out;
  }

  get size(): number {
    return this.models.size;
  }

  /** Every served version. */
  all(): ServedModel[] {
    return [...this.models.values()].flatMap((v) => [...v.values()]);
  }

  async close(): Promise<void> {
    const all = this.all();
    this.models.clear();
    for (const t of all) modelInfo.remove(infoLabels(t));
    await Promise.all(all.map((t) => t.close()));
  }
}
