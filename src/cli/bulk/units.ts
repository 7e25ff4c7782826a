// The units of a bulk encode: one per input shard, or one per block of files. A unit is what one worker
// encodes, writes under a temporary name, renames into place and records as done.
import { createHash } from 'node:crypto';
import path from 'node:path';
import type { ImageFile } from '../find-images.ts';
import type { Inputs } from './inputs.ts';

export interface ShardUnit {
  kind: 'shard';
  /** The shard's file name without `.tar`: its output tar and records are named after it. */
  name: string;
  shard: string;
}

export interface BlockUnit {
  kind: 'block';
  /** The block number, zero-padded (`000012`). */
  name: string;
  /** Global index of the block's first file: files are numbered by their place in the whole list. */
  first: number;
  files: ImageFile[];
}

export type Unit = ShardUnit | BlockUnit;

export interface Plan {
  input: Inputs['kind'];
  units: Unit[];
  /** Files in all and a digest of the list (path and label of each, in order): a file job's units depend on both. */
  files?: { count: number; sha256: string; blockSize: number };
}

/** Images per unit of a file job when the user does not say: small enough to lose little to a crash, large enough to keep files and records few. */
export const DEFAULT_BLOCK_SIZE = 1000;

export function planUnits(inputs: Inputs, blockSize = DEFAULT_BLOCK_SIZE): Plan {
  if (inputs.kind === 'shards') {
    const byName = new Map<string, string>();
    const units: Unit[] = inputs.shards.map((shard) => {
      const name = path.basename(shard).replace(/\.tar$/i, '');
      const other = byName.get(name);
      if (other !== undefined) throw new Error(`${other} and ${shard} would both write ${name}.tar: shard file names must differ`);
      byName.set(name, shard);
      return { kind: 'shard', name, shard };
    });
    return { input: 'shards', units };
  }
  const { files } = inputs;
  const blocks = Math.ceil(files.length / blockSize);
  const width = Math.max(6, String(Math.max(0, blocks - 1)).length);
  const units: Unit[] = [];
  for (let b = 0; b < blocks; b++) {
    units.push({ kind: 'block', name: String(b).padStart(width, '0'), first: b * blockSize, files: files.slice(b * blockSize, (b + 1) * blockSize) });
  }
  const hash = createHash('sha256');
  for (const f of files) hash.update(`${path.resolve(f.path)}\t${f.label}\n`);
  return { input: 'files', units, files: { count: files.length, sha256: hash.digest('hex'), blockSize } };
}
