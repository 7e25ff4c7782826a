// Lists and deletes model versions: shipped ones (FQ_MODELS_DIR, version 1) and those fine-tuning published.
import { rm } from 'node:fs/promises';
import { FqError, quoted } from '../errors.ts';
import type { ModelRegistry } from '../serving/model-registry.ts';
import type { JobStore } from './job-store.ts';

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
  store.markVersionDeleted(name, version);
  await registry.unload(name, version); // in-flight requests on it finish first
  await rm(row.dir, { recursive: true, force: true });
}
