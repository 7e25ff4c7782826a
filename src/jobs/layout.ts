// Where jobs live on disk under FQ_DATA_DIR, and where the trainer is. (Fine-tuned versions are published into FQ_MODELS_DIR.)
import path from 'node:path';

export { TRAINER_DIR } from '../python-launcher.ts';

export interface DataLayout {
  database: string;
  jobsDir: string;
  weightsDir: string;
}

export function dataLayout(dataDir: string, weightsDir: string): DataLayout {
  return {
    database: path.join(dataDir, 'fqtok.db'),
    jobsDir: path.join(dataDir, 'jobs'),
    weightsDir, // LPIPS/VGG and teacher weights, never downloaded
  };
}

export function jobPaths(jobsDir: string, id: string) {
  const dir = path.join(jobsDir, id);
  return {
    dir,
    spec: path.join(dir, 'spec.json'),
    stderr: path.join(dir, 'stderr.log'),
    output: path.join(dir, 'output'),
    exportedModel: path.join(dir, 'output', 'model'),
    checkpoints: path.join(dir, 'output', 'checkpoints'),
    /** The trainer's sample reconstruction grids, `step-NNNNNN.png` (trainer/fqgan/sample_grid.py). */
    samples: path.join(dir, 'output', 'samples'),
  };
}
