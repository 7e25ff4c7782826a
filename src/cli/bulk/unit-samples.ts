// The samples of a unit, in order: a shard's samples streamed from its tar, or a block's image files.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { readShardSamples } from '../../formats/webdataset.ts';
import { CARRIED_MEMBERS } from './unit-outputs.ts';
import type { Unit } from './units.ts';

export interface UnitSample {
  /** Output key: the shard's key, or the file's global index. */
  key: string;
  /** The file, or `shard:key`. */
  source: string;
  label?: number;
  /** Members carried through to a code shard (cls, txt, json). */
  carried: Map<string, Buffer>;
  /** Reads the image's bytes; undefined with `missing` saying why there is no image. */
  read?: () => Promise<Uint8Array>;
  name?: string;
  missing?: string;
}

/** The image member of a shard sample: the first of these it has (WebDataset's usual image extensions). */
export const IMAGE_MEMBERS = ['jpg', 'jpeg', 'png', 'webp'] as const;
/** A member larger than this is not read (a shard sample's image; the service's request limit is 64 MiB). */
export const MAX_MEMBER_BYTES = 256 * 1024 * 1024;

const KEPT: ReadonlySet<string> = new Set([...IMAGE_MEMBERS, ...CARRIED_MEMBERS]);

/** A `.cls` member's class: a whole number in ASCII, as WebDataset writes it. */
function classOf(cls: Buffer | undefined): number | undefined {
  const text = cls?.toString('utf8').trim();
  return text !== undefined && /^\d+$/.test(text) ? Number(text) : undefined;
}

async function* shardSamples(shard: string): AsyncGenerator<UnitSample> {
  const shardName = path.basename(shard);
  for await (const { key, members, oversized } of readShardSamples(shard, { keep: (ext) => KEPT.has(ext), maxMemberBytes: MAX_MEMBER_BYTES })) {
    const carried = new Map(CARRIED_MEMBERS.filter((ext) => members.has(ext)).map((ext) => [ext, members.get(ext)!]));
    const sample: UnitSample = { key, source: `${shardName}:${key}`, label: classOf(members.get('cls')), carried };
    const ext = IMAGE_MEMBERS.find((e) => members.has(e));
    if (ext) {
      const bytes = members.get(ext)!;
      yield { ...sample, read: async () => bytes, name: `${key}.${ext}` };
    } else {
      const big = IMAGE_MEMBERS.find((e) => oversized.has(e));
      const missing = big
        ? `its ${big} member (${oversized.get(big)} bytes) is over the ${MAX_MEMBER_BYTES}-byte limit`
        : `no image member (${IMAGE_MEMBERS.join(', ')})`;
      yield { ...sample, missing };
    }
  }
}

export async function* unitSamples(unit: Unit): AsyncGenerator<UnitSample> {
  if (unit.kind === 'shard') {
    yield* shardSamples(unit.shard);
    return;
  }
  for (let k = 0; k < unit.files.length; k++) {
    const file = unit.files[k]!;
    yield { key: String(unit.first + k), source: file.path, label: file.label, carried: new Map(), read: () => readFile(file.path), name: path.basename(file.path) };
  }
}
