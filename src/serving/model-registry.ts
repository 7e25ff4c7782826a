// The model registry: which model versions are served, each a ServedModel, and the default model.
import { FqError, quoted } from '../errors.ts';
import { logger } from '../logger.ts';
import { modelInfo } from '../metrics.ts';
import { readManifest, type Manifest } from '../backends/manifest.ts';
import type { BackendHealth, BackendInfo } from '../backends/backend.ts';
import { createBackend, type BackendOptions } from '../backends/backend-factory.ts';
import { ServedModel, type BatchingOptions, type ModelRef } from './served-model.ts';

export interface RegistryOptions extends BatchingOptions, BackendOptions {
  defaultModel?: string;
  /**
   * The batching of a version once its backend is up (it may depend on where the backend runs: a GPU's
   * throughput keeps growing with the batch); the options' own maxBatch, batchWaitMs and maxQueue when absent.
   */
  batchingFor?(backend: BackendInfo): BatchingOptions;
}

export interface ModelSummary {
  name: string;
  version: number;
  dir: string;
  default: boolean;
  executionProvider: string;
  backend: BackendInfo;
  health: BackendHealth;
  loadedAt: Date;
}

const infoLabels = (served: ServedModel) => ({
  model: served.model.name,
  version: String(served.model.version),
  execution_provider: served.executionProvider,
  requested_execution_provider: served.backendInfo.requestedDevice,
});

export class ModelRegistry {
  /** name -> version -> served model */
  private readonly models = new Map<string, Map<number, ServedModel>>();
  private defaultName: string | undefined;

  constructor(private readonly options: RegistryOptions) {
    this.defaultName = options.defaultModel;
  }

  /**
   * Loads a model folder and serves it as `name` version `version`; a version already served is
   * replaced, and the one it replaces finishes its in-flight requests first. `manifest`: when the
   * caller has read (and checked) it already.
   */
  async load(name: string, version: number, dir: string, manifest?: Manifest): Promise<ServedModel> {
    manifest ??= await readManifest(dir);
    const backend = await createBackend(dir, manifest, `${name}@${version}`, this.options);
    const ref: ModelRef = { name, version, dir, manifest };
    const served = new ServedModel(ref, backend, this.options.batchingFor?.(backend.info) ?? this.options);
    let versions = this.models.get(name);
    if (!versions) this.models.set(name, (versions = new Map()));
    const previous = versions.get(version);
    versions.set(version, served);
    if (previous) {
      modelInfo.remove(infoLabels(previous));
      await previous.close(`${previous.label} was replaced; retry`);
    }
    modelInfo.set(infoLabels(served), 1);
    this.defaultName ??= name;
    logger.info({ model: name, version, dir, executionProvider: backend.executionProvider, ...backend.info }, 'model loaded');
    return served;
  }

  /**
   * Stops serving one version (only if it is served from `dir`, when given): new requests no longer
   * find it, and the requests already admitted to it finish before its backend closes.
   */
  async unload(name: string, version: number, dir?: string): Promise<void> {
    const versions = this.models.get(name);
    const served = versions?.get(version);
    if (!versions || !served || (dir !== undefined && served.model.dir !== dir)) return;
    versions.delete(version);
    if (versions.size === 0) this.models.delete(name);
    // Without FQ_DEFAULT_MODEL the default is the first model loaded; when that one goes, the first by name.
    if (!this.options.defaultModel && this.defaultName === name && !this.models.has(name)) {
      this.defaultName = [...this.models.keys()].sort()[0];
    }
    modelInfo.remove(infoLabels(served));
    logger.info({ model: name, version, dir: served.model.dir }, 'model unloading: in-flight requests finish first');
    await served.close(`${served.label} is being unloaded`);
    logger.info({ model: name, version }, 'model unloaded');
  }

  get defaultModel(): string | undefined {
    return this.defaultName;
  }

  /** The folder `name` version `version` is served from, if it is served. */
  servedFrom(name: string, version: number): string | undefined {
    return this.models.get(name)?.get(version)?.model.dir;
  }

  /** The served model `name` (default model when omitted), at `version` (latest when omitted). */
  get(name?: string, version?: number): ServedModel {
    const wanted = name ?? this.defaultName;
    if (!wanted) throw new FqError('unknown_model', 'no model is loaded');
    const versions = this.models.get(wanted);
    if (!versions) {
      throw new FqError('unknown_model', `unknown model ${quoted(wanted)}; known: ${[...this.models.keys()].join(', ') || 'none'}`);
    }
    const v = version ?? Math.max(...versions.keys());
    const served = versions.get(v);
    if (!served) {
      throw new FqError('unknown_model', `model ${quoted(wanted)} has no version ${v}; versions: ${[...versions.keys()].join(', ')}`);
    }
    return served;
  }

  list(): ModelSummary[] {
    const out: ModelSummary[] = [];
    for (const [name, versions] of [...this.models.entries()].sort(([a], [b]) => a.localeCompare(b))) {
      for (const [version, served] of [...versions.entries()].sort(([a], [b]) => a - b)) {
        out.push({
          name,
          version,
          dir: served.model.dir,
          default: name === this.defaultName,
          executionProvider: served.executionProvider,
          backend: served.backendInfo,
          health: served.health(),
          loadedAt: served.loadedAt,
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
    for (const served of all) modelInfo.remove(infoLabels(served));
    await Promise.all(all.map((served) => served.close('the server is shutting down')));
  }
}
