// What `fqtok pull` (and FQ_PULL) accepts: the released FQGAN tokenizers by name, any checkpoint on
// the Hub as hf://owner/repo/path@revision, and training weights by name.
import { MODEL_NAME_PATTERN } from '../jobs/create-job.ts';
import type { HubFileRef } from './hub-file.ts';
import { HubError } from './hub-file.ts';
import { TRAINING_SET, TRAINING_WEIGHTS } from './training-weights.ts';

/**
 * The released checkpoints (github.com/showlab/FQGAN's README links them at resolve/main). No
 * revision or sha256 is pinned: neither is published anywhere found; each pull records the commit it
 * resolved and the Hub's sha256 of the file, and checks the download against that sha256.
 */
export const RELEASED_TOKENIZERS: Record<string, HubFileRef> = {
  'fqgan-triple-ds16': { repo: 'ZechenBai/FQGAN', path: 'fqgan_triple_ds16.pt', revision: 'main' },
  'fqgan-dual-ds16': { repo: 'ZechenBai/FQGAN', path: 'fqgan_dual_ds16.pt', revision: 'main' },
  'fqgan-triple-ds8': { repo: 'ZechenBai/FQGAN', path: 'fqgan_triple_ds8.pt', revision: 'main' },
  'fqgan-dual-ds8': { repo: 'ZechenBai/FQGAN', path: 'fqgan_dual_ds8.pt', revision: 'main' },
};

export type PullTarget = { kind: 'model'; name: string; ref: HubFileRef } | { kind: 'weights'; names: string[] };

/** The name a checkpoint is served under: its file name without extension, lower case, `_` as `-`. */
export function modelNameFor(file: string): string {
  return file
    .replace(/^.*\//, '')
    .replace(/\.(pt|pth|ckpt|bin|safetensors)$/i, '')
    .toLowerCase()
    .replace(/_/g, '-');
}

/** One `fqtok pull` argument; `as` names the installed model instead of the catalogue or file name. */
export function parsePullTarget(spec: string, as?: string): PullTarget {
  if (spec === 'training-weights') return { kind: 'weights', names: TRAINING_SET };
  if (TRAINING_WEIGHTS[spec]) return { kind: 'weights', names: [spec] };
  let name: string;
  let ref: HubFileRef;
  const released = RELEASED_TOKENIZERS[spec];
  if (released) {
    name = spec;
    ref = released;
  } else if (spec.startsWith('hf://')) {
    const rest = spec.slice('hf://'.length);
    const at = rest.lastIndexOf('@');
    const [location, revision] = at > 0 ? [rest.slice(0, at), rest.slice(at + 1)] : [rest, 'main'];
    const parts = location.split('/');
    if (parts.length < 3 || parts.some((p) => !p || p === '.' || p === '..') || !revision) {
      throw new HubError(`'${spec}' is not hf://owner/repo/path/to/checkpoint.pt[@revision]`);
    }
    ref = { repo: `${parts[0]}/${parts[1]}`, path: parts.slice(2).join('/'), revision };
    name = modelNameFor(ref.path);
  } else {
    const known = [...Object.keys(RELEASED_TOKENIZERS), 'training-weights', ...Object.keys(TRAINING_WEIGHTS)].join(', ');
    throw new HubError(`unknown '${spec}': give one of ${known}, or hf://owner/repo/path/to/checkpoint.pt[@revision]`);
  }
  name = as ?? name;
  if (!MODEL_NAME_PATTERN.test(name)) throw new HubError(`'${name}' cannot name a model folder (${MODEL_NAME_PATTERN.source}); choose one with --as`);
  return { kind: 'model', name, ref };
}
