// Where jobs and fine-tuned models live on disk under FQ_DATA_DIR, and where the trainer is.
import path from 'node:path';

export { TRAINER_DIR } from '../python-launcher.ts';

export interface DataLayout {
  database: string;
  jobsDir: string;
  modelsDir: string;
  weightsDir: string;
}

export function dataLayout(dataDir: string, weightsDir: string): DataLayout {
  return {
    database: path.join(dataDir, 'fqtok.db'),
    jobsDir: path.join(dataDir, 'jobs'),
    modelsDir: path.join(dataDir, 'models'), // <name>/<version>/, Triton-style
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
