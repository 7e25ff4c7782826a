// Asks the trainer itself about a spec (`--check`, `--example-spec`): one source of truth for its settings.
import type { FieldError } from '../errors.ts';
import { parseTrainerLine, str } from './trainer-events.ts';
import { runTrainerOnce } from './trainer-process.ts';

const defaultsByPython = new Map<string, Promise<Record<string, any>>>();

/** The trainer's complete default spec (cached per interpreter). */
export function trainerDefaults(python: string): Promise<Record<string, any>> {
  let defaults = defaultsByPython.get(python);
  if (!defaults) {
    defaults = runTrainerOnce(python, ['--example-spec']).then(({ exit, lines, stderr }) => {
      if (exit.code !== 0) throw new Error(`python -m fqgan.train --example-spec failed (exit ${exit.code}): ${stderr.trim()}`);
      return JSON.parse(lines.join('\n')) as Record<string, any>;
    });
    defaults.catch(() => defaultsByPython.delete(python)); // retry next time instead of caching a failure
    defaultsByPython.set(python, defaults);
  }
  return defaults;
}

/** The trainer's problems with the spec file ([] when valid). */
export async function checkSpec(python: string, specFile: string): Promise<FieldError[]> {
  const { exit, lines, stderr } = await runTrainerOnce(python, ['--spec', specFile, '--check']);
  const events = lines.map(parseTrainerLine).filter((e) => e !== undefined);
  if (exit.code === 0 && events.some((e) => e.type === 'valid')) return [];
  const problems = events
    .filter((e) => e.type === 'error')
    .map((e) => {
      const field = str(e.data.field) ?? 'spec';
      // The trainer's message starts with its field for people reading its output; a field error names it once.
      const message = str(e.data.message) ?? 'refused by the trainer';
      return { field, message: message.startsWith(`${field}: `) ? message.slice(field.length + 2) : message };
    });
  if (exit.code === 2 && problems.length) return problems;
  throw new Error(`python -m fqgan.train --check failed (exit ${exit.code}): ${stderr.trim().slice(-2000)}`);
}
