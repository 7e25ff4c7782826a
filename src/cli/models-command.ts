// `fqtok models`: the models of FQ_MODELS_DIR from their manifests (nothing is loaded), or a server's
// GET /models; both in the shape GET /models answers.
import { manifestFacts, readManifest } from '../backends/manifest.ts';
import type { Config } from '../config.ts';
import { findModelFolders, pickModelFolder } from '../serving/model-folders.ts';

export async function modelsCommand(config: Config, server: string | undefined): Promise<unknown> {
  if (server) {
    const response = await fetch(new URL('/models', server));
    if (!response.ok) throw new Error(`server answered ${response.status}: ${await response.text()}`);
    return response.json();
  }
  const folders = (await findModelFolders(config.modelsDir)) ?? [];
  if (folders.length === 0) return { default: null, models: [] };
  const defaultName = pickModelFolder(folders, undefined, config.defaultModel).name;
  // Where each would run (execution provider, device, readiness) is known only once it runs: ask a server.
  const models = await Promise.all(
    folders.map(async ({ name, version, dir }) => ({ name, version, default: name === defaultName, ...manifestFacts(await readManifest(dir)) })),
  );
  return { default: defaultName, models };
}
