// Decode to an archive: admission (every grid) -> deadline -> grids checked -> decoded chunk by chunk into
// a streamed evaluation archive (bounded memory). All is checked before the archive's first byte exists.
import { createSampleArchive, type SampleArchive } from '../formats/sample-archive.ts';
import type { ServedModel } from '../serving/served-model.ts';
import { admit, type RequestLimits } from './admission.ts';
import { selectCodebooks } from './codebooks.ts';
import { GRID_SETS, runDecode, validateGrids, type DecodeGridsOptions } from './decode-grids.ts';
import { pipelined } from './pipelined.ts';
import type { GridSet } from './token-layout.ts';

/** Decode calls in flight at once: the model stays busy while the previous chunk is written. */
const CHUNKS_IN_FLIGHT = 2;

/**
 * Starts decoding at once; read the archive's output. A failure midway (the deadline included)
 * destroys the output with the error. Admission and deadline end when the output closes.
 */
export function decodeToArchive(model: ServedModel, set: GridSet, options: DecodeGridsOptions, limits: RequestLimits = {}): SampleArchive {
  const admission = admit(model, 'decode', set.count, GRID_SETS, limits);
  let archive: SampleArchive;
  try {
    const codebooks = selectCodebooks(model, options.codebooks);
    const tokens = validateGrids(model, set, codebooks);
    const { grid, downsample } = model.model.manifest;
    archive = createSampleArchive({ count: set.count, height: grid[0] * downsample, width: grid[1] * downsample });
    const chunk = model.maxBatch; // one inference run per call
    const cells = grid[0] * grid[1];
    const starts = Array.from({ length: Math.ceil(set.count / chunk) }, (_, k) => k * chunk);
    const decodeChunk = (start: number) => {
      const end = Math.min(set.count, start + chunk);
      const part = Object.fromEntries(Object.entries(tokens).map(([name, data]) => [name, data.subarray(start * cells, end * cells)]));
      return runDecode(model, part, end - start, codebooks, admission.submit);
    };
    const output = archive;
    let finished = false;
    (async () => {
      for await (const { rgb } of pipelined(starts, decodeChunk, CHUNKS_IN_FLIGHT)) await output.write(rgb);
      finished = true;
      output.end();
    })().catch((err: Error) => output.destroy(err));
    output.output.once('close', () => {
      if (!finished) admission.stop('the archive was closed before it was complete'); // queued chunks are dropped
      admission.end();
    });
  } catch (err) {
    admission.end();
    throw err;
  }
  return archive;
}
