// What the routes need from the running service: one type, so that route files and app.ts do not import each other.
import type { Config } from '../config.ts';
import type { CropSource } from '../tokenize/encode-images.ts';
import type { ModelRegistry } from '../serving/model-registry.ts';
import type { JobsService } from '../jobs/jobs-service.ts';

export interface Lifecycle {
  shuttingDown: boolean;
  /** What the service still waits for before it is ready (models being pulled at start-up). */
  waitingFor?: () => string[];
}

export interface AppDeps {
  config: Config;
  registry: ModelRegistry;
  preprocessor: CropSource;
  lifecycle: Lifecycle;
  /** Fine-tuning jobs and model versions (admin); absent where nothing runs them (e.g. `fqtok openapi`). */
  jobs?: JobsService;
}
