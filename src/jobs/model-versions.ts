// Lists and deletes model versions: shipped ones (FQ_MODELS_DIR, version 1) and those fine-tuning published;
// and the rule for the names fine-tuning may publish under.
import { rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { FqError, quoted } from '../errors.ts';
import type { ModelRegistry } from '../serving/model-registry.ts';
import type { JobStore } from './job-store.ts';
import { removeIfEmpty, withNameLock } from './version-folders.ts';

export interface ModelVersionInfo {
  name: string;
  version: number;
  source: 'shipped' | 'fine-tuned';
  jobId: string | null;
  createdAt: Date | null;
  default: boolean;
}

export function listVersions(store: JobStore, registry: ModelRegistry, name: string): ModelVersionInfo[] {
  const published = new Map(store.liveVersions(name).map((v) => [v.version, v]));
  const served = registry.list().filter((m) => m.name === name);
  if (served.length === 0) throw new FqError('unknown_model', `unknown model ${quoted(name)}`);
  const latest = Math.max(...served.map((m) => m.version));
  return served.map((m) => {
    const row = published.get(m.version);
    return {
      name,
      version: m.version,
      source: row ? 'fine-tuned' : 'shipped',
      jobId: row?.jobId ?? null,
      createdAt: row?.createdAt ?? null,
      default: m.default && m.version === latest,
    };
  });
}

/** Stops serving a fine-tuned version and removes its files; never the default, a shipped one or a job's base. */
export async function deleteVersion(store: JobStore, registry: ModelRegistry, name: string, version: number): Promise<void> {
  const versions = listVersions(store, registry, name);
  const target = versions.find((v) => v.version === version);
  if (!target) throw new FqError('not_found', `model ${quoted(name)} has no version ${version}`);
  if (target.source === 'shipped') throw new FqError('conflict', `${name} version ${version} ships in the models folder; remove it there`);
  if (target.default) throw new FqError('conflict', `${name} version ${version} is what the default model serves; it cannot be deleted`);
  const users = store.activeJobsOnBase(name, version);
  if (users.length) throw new FqError('conflict', `${name} version ${version} is the base of ${users.map((j) => j.id).join(', ')}`);
  const row = store.getVersion(name, version)!;
  await withNameLock(name, async () => {
    store.markVersionDeleted(name, version);
    await registry.unload(name, version); // in-flight requests on it finish first
    await rm(row.dir, { recursive: true, force: true });
    // The model's folder goes with its last version (only a folder named after the model, only when empty).
    if (path.basename(path.dirname(row.dir)) === name) await removeIfEmpty(path.dirname(row.dir));
  });
}

/**
 * Fine-tuning never publishes under the name of a model it did not make: a model whose folder in
 * FQ_MODELS_DIR holds a manifest.json itself (shipped, pulled or copied in), or any served version
 * that no job published. Such a version would become the latest, and for the default model the one
 * every request without a version gets, and could not be deleted. Returns why a name is refused.
 */
export async function outputNameRefusal(deps: { store: JobStore; registry: ModelRegistry; modelsDir: string }, name: string): Promise<string | undefined> {
  const refusal = `'${name}' is a model of the models folder (shipped or installed there), not one fine-tuning made; choose another output_model`;
  const plainFolder = await stat(path.join(deps.modelsDir, name, 'manifest.json')).then((s) => s.isFile(), () => false);
  if (plainFolder) return refusal;
  const published = new Set(deps.store.versionRows(name).map((v) => v.version));
  const foreign = deps.registry.list().some((m) => m.name === name && !published.has(m.version));
  return foreign ? refusal : undefined;
}
