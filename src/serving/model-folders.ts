// The models folder (FQ_MODELS_DIR): `<name>/manifest.json` is version 1 of model `<name>`, and
// `<name>/<N>/manifest.json` (Triton's layout, what fine-tuning publishes) is its version N. Names
// starting with a dot are never models: publishers write there first and rename into place.
// The default model is FQ_DEFAULT_MODEL or the first by name.
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { FqError } from '../errors.ts';

export interface ModelFolder {
  name: string;
  version: number;
  dir: string;
}

const VERSION_NAME = /^[1-9][0-9]{0,8}$/;

const hasManifest = (dir: string) => stat(path.join(dir, 'manifest.json')).then((s) => s.isFile(), () => false);

async function subfolders(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  return entries.filter((e) => e.isDirectory() && !e.name.startsWith('.')).map((e) => e.name).sort();
}

/**
 * The model versions of `modelsDir`, by name then version; undefined when the folder does not exist.
 * A flat `<name>/manifest.json` is version 1 even when `<name>/1/` exists too (that one is skipped).
 */
export async function findModelFolders(modelsDir: string): Promise<ModelFolder[] | undefined> {
  if (!(await stat(modelsDir).then((s) => s.isDirectory(), () => false))) return undefined;
  const folders: ModelFolder[] = [];
  for (const name of await subfolders(modelsDir)) {
    const dir = path.join(modelsDir, name);
    const flat = await hasManifest(dir);
    if (flat) folders.push({ name, version: 1, dir });
    const versions = (await subfolders(dir)).filter((v) => VERSION_NAME.test(v)).map(Number).sort((a, b) => a - b);
    for (const version of versions) {
      if (flat && version === 1) continue;
      const versionDir = path.join(dir, String(version));
      if (await hasManifest(versionDir)) folders.push({ name, version, dir: versionDir });
    }
  }
  return folders;
}

/** The latest version of `name`, or of the default model when no name is given; an unknown name is an `unknown_model` error. */
export function pickModelFolder(folders: ModelFolder[], name: string | undefined, defaultModel: string | undefined): ModelFolder {
  const wanted = name ?? defaultModel ?? folders[0]?.name;
  const found = folders.filter((f) => f.name === wanted).at(-1);
  if (!found) {
    const known = [...new Set(folders.map((f) => f.name))].join(', ') || 'none';
    throw new FqError('unknown_model', wanted ? `unknown model '${wanted}'; known: ${known}` : 'no model is there');
  }
  return found;
}
