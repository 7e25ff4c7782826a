// Where the repository and the trainer are, for tests and benchmarks that start processes there.
import path from 'node:path';

export const ROOT = path.resolve(import.meta.dirname, '../..');
export const TRAINER_DIR = path.join(ROOT, 'trainer');
