// What the routes need from the running service: one type, so that route files and app.ts do not import each other.
import type { Config } from '../config.ts';
import { FqError } from '../errors.ts';
import type { BodyParsing } from './body-parser.ts';
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
  /** Request bodies (JSON, NPZ, multipart) parsed off the event loop. */
  bodies: BodyParsing;
  lifecycle: Lifecycle;
  /** Fine-tuning jobs and model versions (admin); absent where nothing runs them (e.g. `fqtok openapi`). */
  jobs?: JobsService;
  /** Why `jobs` is absent when the data directory could not be opened (read-only: 503, full: 507). */
  jobsUnavailable?: FqError;
}

/** The jobs service, or the refusal that says why this process has none. */
export function jobsOf(deps: AppDeps): JobsService {
  if (deps.jobs) return deps.jobs;
  throw deps.jobsUnavailable ?? new FqError('unavailable', 'the jobs service is not running in this process');
}
