// The models folder (FQ_MODELS_DIR): every sub-folder holding a manifest.json is a model, served as
// version 1 under its folder name; the default model is FQ_DEFAULT_MODEL or the first by name.
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { FqError } from '../errors.ts';

export interface ModelFolder {
  name: string;
  dir: string;
}

/** The model folders of `modelsDir`, sorted by name; undefined when the folder does not exist. */
export async function findModelFolders(modelsDir: string): Promise<ModelFolder[] | undefined> {
  let entries: string[];
  try {
    entries = (await readdir(modelsDir)).sort();
  } catch {
    return undefined;
  }
  const folders: ModelFolder[] = [];
  for (const name of entries) {
    const dir = path.join(modelsDir, name);
    if (await stat(path.join(dir, 'manifest.json')).then((s) => s.isFile(), () => false)) folders.push({ name, dir });
  }
  return folders;
}

/** The folder of `name`, or of the default model when no name is given; an unknown name is an `unknown_model` error. */
export function pickModelFolder(folders: ModelFolder[], name: string | undefined, defaultModel: string | undefined): ModelFolder {
  const wanted = name ?? defaultModel ?? folders[0]?.name;
  const found = folders.find((f) => f.name === wanted);
  if (!found) {
    throw new FqError('unknown_model', wanted ? `unknown model '${wanted}'; known: ${folders.map((f) => f.name).join(', ') || 'none'}` : 'no model is there');
  }
  return found;
}
