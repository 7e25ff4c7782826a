// `fqtok openapi`: the document the app's routes produce, for committing as openapi.yaml.
import { createApp } from '../app.ts';
import { loadConfig } from '../config.ts';
import { openApiYaml } from '../http/openapi-document.ts';
import { ModelRegistry } from '../inference/registry.ts';

/** The routes do not touch their dependencies until a request comes, so none are loaded here. */
export function currentOpenApiYaml(): string {
  const config = loadConfig({});
  const app = createApp({
    config,
    registry: new ModelRegistry(config),
    preprocessor: { preprocess: () => Promise.reject(new Error('not serving')) },
    lifecycle: { shuttingDown: true },
  });
  return openApiYaml(app);
}
