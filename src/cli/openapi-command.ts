// `fqtok openapi`: the document the app's routes produce, for committing as openapi.yaml.
import { createApp } from '../app.ts';
import { loadConfig } from '../config.ts';
import { openApiYaml } from '../http/openapi-document.ts';
import { ModelRegistry } from '../serving/model-registry.ts';

/** The app's routes, for reading them: routes touch their dependencies only on a request, so none are loaded. */
export function documentationApp() {
  const config = loadConfig({});
  return createApp({
    config,
    registry: new ModelRegistry(config),
    preprocessor: { preprocess: () => Promise.reject(new Error('not serving')) },
    bodies: { tokens: () => Promise.reject(new Error('not serving')), images: () => Promise.reject(new Error('not serving')) },
    lifecycle: { shuttingDown: true },
  });
}

export function currentOpenApiYaml(): string {
  return openApiYaml(documentationApp());
}
