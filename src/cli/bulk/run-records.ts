// The records a bulk encode keeps in OUT/.fqtok/: what the output is (run.json), which units are done
// (done/UNIT.json), each worker's progress (workers/I-of-N.json), and the unit files being written (partial/).
//
// A unit's files are renamed into place when complete and its done record is written after them, so a
// crash at any moment leaves no unit that looks done. Every record is written whole and renamed.
import { randomBytes } from 'node:crypto';
import { link, mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import path from 'node:path';

export type Layout = 'reference' | 'webdataset';

/** What the codes in an output are: a later run into the same output must make the very same kind. */
export interface RunIdentity {
  input: 'shards' | 'files';
  layout: Layout;
  model: { name: string; version: number; fingerprint: string };
  augment: string;
  orientation: string;
  codebooks: string[];
  /** dtype of the codes written: int64 in the reference layout, uint16 (or int32 past 65,536 codes) in code shards. */
  dtype: string;
  /** A file job's list (units are blocks of it): files, digest, block size. */
  files?: { count: number; sha256: string; blockSize: number };
}

export interface RunRecord extends RunIdentity {
  format: 'fqtok-encode';
  fqtok_version: string;
  created_at: string;
}

export interface SampleError {
  /** The shard's key or the file's global index. */
  key: string;
  /** The shard or the file. */
  source: string;
  reason: string;
}

export interface DoneRecord {
  unit: string;
  /** Files this unit put in OUT (relative to it): its code shard, or for the reference layout its index. */
  outputs: string[];
  count: number;
  errors: SampleError[];
  /** sha256 of the code shard; for the reference layout, of each file's name and bytes in the order written. */
  sha256: string;
  bytes: number;
  model: RunIdentity['model'];
  augment: string;
  orientation: string;
  layout: Layout;
  dtype: string;
  fqtok_version: string;
  worker: { shard: string; host: string; pid: number };
  started_at: string;
  finished_at: string;
  seconds: number;
}

export interface WorkerRecord {
  shard: string;
  source: string;
  host: string;
  pid: number;
  cuda_device: number;
  state: 'running' | 'finished' | 'failed';
  /** Every unit assigned to this worker, by name. */
  units: string[];
  /** Of those, done before this session started. */
  done_before: number;
  /** Done in this session. */
  done_now: number;
  failed: string[];
  images: number;
  errors: number;
  started_at: string;
  updated_at: string;
}

const IDENTITY_FIELDS: [string, (r: RunIdentity) => unknown][] = [
  ['input', (r) => r.input],
  ['layout', (r) => r.layout],
  ['model', (r) => r.model.name],
  ['model version', (r) => r.model.version],
  ['model files (manifest sha256)', (r) => r.model.fingerprint],
  ['augment', (r) => r.augment],
  ['orientation', (r) => r.orientation],
  ['codebooks', (r) => r.codebooks.join(',')],
  ['dtype', (r) => r.dtype],
  ['file count', (r) => r.files?.count],
  ['file list (paths and labels)', (r) => r.files?.sha256.slice(0, 12)],
  ['block size', (r) => r.files?.blockSize],
];

/** The differences between what an output holds and what a run would add, in words; empty when they match. */
export function identityDifferences(there: RunIdentity, here: RunIdentity): string[] {
  return IDENTITY_FIELDS.filter(([, get]) => get(there) !== get(here)).map(([name, get]) => `${name}: ${String(get(there))} there, ${String(get(here))} here`);
}

export class RunMismatch extends Error {}

/** Writes `file` whole (flushed) under a temporary name beside it, then renames it into place. */
export async function writeFileAtomic(file: string, data: string | Uint8Array): Promise<void> {
  const tmp = `${file}.${randomBytes(4).toString('hex')}.tmp`;
  await writeFile(tmp, data, { flush: true });
  try {
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

async function readJson<T>(file: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as T;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(`${file}: ${(err as Error).message}`);
  }
}

async function readJsonFiles<T>(dir: string): Promise<T[]> {
  const names = await readdir(dir).catch((err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? [] : Promise.reject(err)));
  const out: T[] = [];
  for (const name of names.filter((n) => n.endsWith('.json')).sort()) {
    const record = await readJson<T>(path.join(dir, name));
    if (record) out.push(record);
  }
  return out;
}

export class RunFolder {
  readonly dir: string;
  readonly host = hostname();

  constructor(readonly out: string) {
    this.dir = path.join(out, '.fqtok');
  }

  get runFile() {
    return path.join(this.dir, 'run.json');
  }

  private doneFile(unit: string) {
    return path.join(this.dir, 'done', `${unit}.json`);
  }

  /** Where this process writes a unit's files until they are complete (partial/UNIT/HOST.PID + suffix). */
  async partialPath(unit: string, suffix: string): Promise<string> {
    const dir = path.join(this.dir, 'partial', unit);
    await mkdir(dir, { recursive: true });
    return path.join(dir, `${this.host}.${process.pid}${suffix}`);
  }

  /** The run's identity: recorded by the first worker (atomically: one wins), compared by every later one. */
  async claim(identity: RunIdentity, fqtokVersion: string): Promise<RunRecord> {
    await Promise.all(['done', 'workers', 'partial', 'index'].map((d) => mkdir(path.join(this.dir, d), { recursive: true })));
    const record: RunRecord = { format: 'fqtok-encode', ...identity, fqtok_version: fqtokVersion, created_at: new Date().toISOString() };
    const tmp = `${this.runFile}.${randomBytes(4).toString('hex')}.tmp`;
    await writeFile(tmp, JSON.stringify(record, null, 2) + '\n', { flush: true });
    try {
      await link(tmp, this.runFile); // fails if it exists: two workers starting together agree on one record
      return record;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    } finally {
      await rm(tmp, { force: true });
    }
    const there = (await readJson<RunRecord>(this.runFile))!;
    const differences = identityDifferences(there, identity);
    if (differences.length > 0) {
      throw new RunMismatch(
        `${this.out} holds codes of another kind (${differences.join('; ')}); refusing to mix them. Use another --out, or remove ${this.out} to start over.`,
      );
    }
    return there;
  }

  async run(): Promise<RunRecord | undefined> {
    return readJson<RunRecord>(this.runFile);
  }

  async doneRecords(): Promise<DoneRecord[]> {
    return readJsonFiles<DoneRecord>(path.join(this.dir, 'done'));
  }

  async recordDone(record: DoneRecord): Promise<void> {
    await writeFileAtomic(this.doneFile(record.unit), JSON.stringify(record, null, 2) + '\n');
  }

  async workerRecords(): Promise<WorkerRecord[]> {
    return readJsonFiles<WorkerRecord>(path.join(this.dir, 'workers'));
  }

  async recordWorker(record: WorkerRecord): Promise<void> {
    const [i, n] = record.shard.split('/');
    await writeFileAtomic(path.join(this.dir, 'workers', `${i}-of-${n}.json`), JSON.stringify(record, null, 2) + '\n');
  }

  /** Removes what an earlier, interrupted attempt at `unit` left (units belong to one worker, so nobody else is writing them). */
  async clearPartials(unit: string): Promise<void> {
    await rm(path.join(this.dir, 'partial', unit), { recursive: true, force: true });
  }
}
