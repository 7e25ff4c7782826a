// `fqtok encode --status OUT`: every worker's progress on one output, from the records they keep there.
import { RunFolder } from './bulk/run-records.ts';

const seconds = (from: string, to: string) => (Date.parse(to) - Date.parse(from)) / 1000;
const rate = (images: number, s: number) => (s > 0 ? Math.round((images / s) * 10) / 10 : null);

export async function encodeStatus(out: string) {
  const folder = new RunFolder(out);
  const run = await folder.run();
  if (!run) throw new Error(`${out} has no .fqtok/run.json: no fqtok encode has started writing there`);
  const done = await folder.doneRecords();
  const workers = await folder.workerRecords();
  const doneNames = new Set(done.map((d) => d.unit));
  const known = new Set([...workers.flatMap((w) => w.units), ...doneNames]);
  const failed = [...new Set(workers.flatMap((w) => w.failed))].filter((u) => !doneNames.has(u));
  const images = done.reduce((n, d) => n + d.count, 0);
  const errors = done.reduce((n, d) => n + d.errors.length, 0);
  // The whole job's pace: images done over the time from the first unit's start to the last unit's end.
  const first = done.map((d) => d.started_at).sort()[0];
  const last = done.map((d) => d.finished_at).sort().at(-1);
  return {
    out,
    model: `${run.model.name}@${run.model.version}`,
    input: run.input,
    layout: run.layout,
    augment: run.augment,
    dtype: run.dtype,
    units: { known: known.size, done: doneNames.size, pending: known.size - doneNames.size, failed },
    images,
    errors,
    images_per_s: first && last ? rate(images, seconds(first, last)) : null,
    workers: workers.map((w) => ({
      shard: w.shard,
      from: w.source,
      host: w.host,
      cuda_device: w.cuda_device,
      state: w.state,
      units: w.units.length,
      done: w.units.filter((u) => doneNames.has(u)).length,
      failed: w.failed,
      // This session's pace (a rerun's session counts only what it encoded itself).
      images: w.images,
      errors: w.errors,
      images_per_s: rate(w.images, seconds(w.started_at, w.updated_at)),
      updated_at: w.updated_at,
    })),
  };
}
