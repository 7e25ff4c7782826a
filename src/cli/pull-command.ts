// `fqtok pull`: models and training weights from the Hugging Face Hub, with a progress bar on a terminal.
import cliProgress from 'cli-progress';
import type { Config } from '../config.ts';
import { pull, type PullResult } from '../hub/pull.ts';

export interface PullCommandOptions {
  targets: string[];
  as?: string;
  weights?: 'model' | 'ema';
}

const mb = (bytes: number) => (bytes / 1e6).toFixed(1);

export async function pullCommand(config: Config, options: PullCommandOptions): Promise<PullResult[]> {
  const results: PullResult[] = [];
  for (const target of options.targets) {
    const bar = new cliProgress.SingleBar(
      // cli-progress draws nothing when stderr is not a terminal; logs and pipes stay clean.
      { format: '{what} [{bar}] {done} of {size} MB', stream: process.stderr, noTTYOutput: false },
      cliProgress.Presets.shades_classic,
    );
    let shown: string | undefined;
    try {
      const result = await pull(target, config, {
        as: options.as,
        weights: options.weights,
        onProgress(what, bytes, total) {
          if (shown !== what) {
            if (shown) bar.stop();
            bar.start(total ?? bytes, bytes, { what, done: mb(bytes), size: total ? mb(total) : '?' });
            shown = what;
          }
          bar.update(bytes, { done: mb(bytes) });
        },
        onStep(message) {
          if (shown) bar.stop();
          shown = undefined;
          process.stderr.write(`${message}\n`);
        },
      });
      if (shown) bar.stop();
      results.push(result);
    } catch (err) {
      if (shown) bar.stop();
      throw err;
    }
  }
  return results;
}
