// Where a unit's codes go: one code shard (WebDataset) or the reference extractor's .npy files, written
// under temporary names and moved into place only when the whole unit is written.
import { createHash } from 'node:crypto';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { writeNpy } from '../../formats/npz.ts';
import { codesNpy, ShardWriter } from '../../formats/webdataset.ts';
import { writeFileAtomic, type Layout, type RunFolder } from './run-records.ts';

export interface EncodedSample {
  /** Output key: the shard member key, or for files the global index. */
  key: string;
  /** The file, or `shard:key`, for the index. */
  source: string;
  /** Class label when the input has one (ImageFolder class, file list label, or a shard's `.cls`). */
  label?: number;
  /** Members carried through from an input shard (cls, txt, json), by extension. */
  carried: Map<string, Buffer>;
  /** Per codebook, [views * h * w] codes. */
  tokens: Record<string, Int32Array>;
}

export interface UnitOutput {
  add(sample: EncodedSample): Promise<void>;
  /** Moves the unit's files into place; returns what they are. */
  commit(): Promise<{ outputs: string[]; bytes: number; sha256: string }>;
  /** Drops everything written so far. */
  abort(): Promise<void>;
}

export interface OutputSettings {
  folder: RunFolder;
  layout: Layout;
  /** Folder for the reference layout's `{i}.npy` labels; none when undefined. */
  labels?: string;
  codebooks: string[];
  views: number;
  cells: number;
  /** Code dtype of shards (the reference layout is int64, as the extractor writes). */
  dtype: 'uint16' | 'int32';
}

/** Members of an input shard that a code shard carries through unchanged. */
export const CARRIED_MEMBERS = ['cls', 'txt', 'json'] as const;

async function codeShard(unit: string, settings: OutputSettings): Promise<UnitOutput> {
  const partial = await settings.folder.partialPath(unit, '.tar');
  const writer = new ShardWriter(partial);
  const { codebooks, views, cells, dtype } = settings;
  return {
    async add(sample) {
      for (const name of codebooks) await writer.add(`${sample.key}.${name}.npy`, codesNpy(sample.tokens[name]!, [views, cells], dtype));
      if (sample.carried.size > 0) {
        for (const ext of CARRIED_MEMBERS) {
          const data = sample.carried.get(ext);
          if (data) await writer.add(`${sample.key}.${ext}`, data);
        }
      } else {
        // From files: the class label as WebDataset's .cls, and where the image came from.
        await writer.add(`${sample.key}.cls`, Buffer.from(String(sample.label ?? 0)));
        await writer.add(`${sample.key}.json`, Buffer.from(JSON.stringify({ file: sample.source })));
      }
    },
    async commit() {
      const written = await writer.finish();
      const name = `${unit}.tar`;
      await rename(partial, path.join(settings.folder.out, name));
      return { outputs: [name], ...written };
    },
    async abort() {
      await writer.abort();
      await rm(partial, { force: true });
    },
  };
}

/** File stem of a sample in the reference layout: its index, or its shard key (folders in a key become dashes). */
const stem = (key: string) => key.replaceAll('/', '-');

async function referenceFiles(unit: string, settings: OutputSettings): Promise<UnitOutput> {
  const { folder, codebooks, views, cells } = settings;
  const codesDir = await folder.partialPath(unit, '.codes');
  await mkdir(codesDir);
  // Labels may be on another file system: their partial folder is beside them, so that renames stay renames.
  // Like the codes' partial folder, it belongs to this unit's worker: what an interrupted attempt left goes.
  const labelsUnitDir = settings.labels ? path.join(settings.labels, '.fqtok-partial', unit) : undefined;
  const labelsDir = labelsUnitDir && path.join(labelsUnitDir, `${folder.host}.${process.pid}`);
  if (labelsUnitDir) await rm(labelsUnitDir, { recursive: true, force: true });
  if (labelsDir) await mkdir(labelsDir, { recursive: true });
  const hash = createHash('sha256');
  let bytes = 0;
  const moves: [string, string][] = [];
  const index: string[] = [];
  // Not flushed one by one: a GPU writes thousands a second. A killed process loses nothing written;
  // only a power cut could leave a done unit with short files.
  const put = async (dir: string, finalDir: string, name: string, data: Uint8Array) => {
    await writeFile(path.join(dir, name), data);
    hash.update(name + '\0').update(data);
    bytes += data.length;
    moves.push([path.join(dir, name), path.join(finalDir, name)]);
  };
  return {
    async add(sample) {
      const s = stem(sample.key);
      for (const name of codebooks) {
        await put(codesDir, folder.out, `${s}_${name}.npy`, writeNpy({ shape: [1, views, cells], data: sample.tokens[name]! }, 'int64'));
      }
      if (labelsDir && sample.label !== undefined) await put(labelsDir, settings.labels!, `${s}.npy`, writeNpy({ shape: [1], data: Int32Array.of(sample.label) }, 'int64'));
      index.push(JSON.stringify({ key: s, source: sample.source, label: sample.label ?? null }));
    },
    async commit() {
      for (const [from, to] of moves) await rename(from, to);
      const indexName = path.join('.fqtok', 'index', `${unit}.jsonl`);
      await writeFileAtomic(path.join(folder.out, indexName), index.map((l) => l + '\n').join(''));
      if (labelsUnitDir) await rm(labelsUnitDir, { recursive: true, force: true });
      return { outputs: [indexName], bytes, sha256: hash.digest('hex') };
    },
    async abort() {
      await rm(codesDir, { recursive: true, force: true });
      if (labelsUnitDir) await rm(labelsUnitDir, { recursive: true, force: true });
    },
  };
}

export function openUnitOutput(unit: string, settings: OutputSettings): Promise<UnitOutput> {
  return settings.layout === 'webdataset' ? codeShard(unit, settings) : referenceFiles(unit, settings);
}
