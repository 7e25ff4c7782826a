// Asks the trainer which request fields it takes (`python -m fqgan.spec_fields`): types, defaults, help, limits.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { childEnv, launcherArgs, TRAINER_DIR } from '../python-launcher.ts';

export interface TrainerField {
  name: string;
  type: 'boolean' | 'integer' | 'number' | 'string' | 'object';
  nullable: boolean;
  default: unknown;
  help: string;
  minimum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  enum?: string[];
}

export interface TrainerFields {
  hyperparameters: TrainerField[];
  device: TrainerField[];
}

const fieldsByPython = new Map<string, Promise<TrainerFields>>();

/** The trainer's own description of its settings (cached per interpreter; a failure is retried next time). */
export function trainerFields(python: string): Promise<TrainerFields> {
  let fields = fieldsByPython.get(python);
  if (!fields) {
    fields = promisify(execFile)(python, launcherArgs('fqgan.spec_fields', []), { cwd: TRAINER_DIR, env: childEnv(), timeout: 60_000 }).then(
      ({ stdout }) => JSON.parse(stdout) as TrainerFields,
      (err: Error & { stderr?: string }) => {
        throw new Error(`python -m fqgan.spec_fields failed: ${(err.stderr ?? err.message).trim().slice(-2000)}`);
      },
    );
    fields.catch(() => fieldsByPython.delete(python));
    fieldsByPython.set(python, fields);
  }
  return fields;
}
