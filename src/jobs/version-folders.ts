// Model folders of published versions: one publish or delete at a time per model name in this process
// (so that removing a model's emptied folder never races a publish about to put a version into it).
import { rmdir } from 'node:fs/promises';

const tails = new Map<string, Promise<unknown>>();

export async function withNameLock<T>(name: string, work: () => Promise<T>): Promise<T> {
  const before = tails.get(name) ?? Promise.resolve();
  const run = before.then(work, work);
  const tail = run.catch(() => undefined);
  tails.set(name, tail);
  try {
    return await run;
  } finally {
    if (tails.get(name) === tail) tails.delete(name);
  }
}

/** A model's folder goes with its last version (rmdir: only when nothing else is in it). */
export async function removeIfEmpty(dir: string): Promise<void> {
  await rmdir(dir).catch(() => undefined);
}
