// Micro-batcher: concurrent requests for one model share one inference run.
// One owner of the queue state; each entry carries its own promise; batches close on size or wait;
// entries whose caller went away (their signal aborted: client gone, or the request's deadline) are
// dropped before they run; overload is refused at once. The batcher keeps no deadline of its own: the
// request's scope (serving/request-scope.ts) aborts the signal.
// A request reserves room for all its items before any work is done for it (see reserve()), so a
// request is admitted or refused whole, and nothing runs for a refused one.
import { abortReason, FqError } from '../errors.ts';

export interface BatcherOptions<P, R> {
  /** Most items in one run. An entry may not be larger than this. */
  maxBatch: number;
  /** How long the first waiting entry waits for company. */
  maxWaitMs: number;
  /** Most items reserved or waiting; beyond it reserve() and submit() fail at once with `overloaded`. */
  maxQueue: number;
  /** Runs one batch: entries' payloads in, one result per entry out, same order. */
  run(payloads: P[]): Promise<R[]>;
  /** Entries with different keys never share a run (e.g. different decode masks). */
  keyOf?(payload: P): string;
  onBatch?(items: number, durationMs: number): void;
  onDropped?(reason: 'aborted' | 'timeout'): void;
}

export interface SubmitOptions {
  /** Aborts when the caller stops waiting; its reason (an FqError) says why, e.g. `timeout`. */
  signal?: AbortSignal;
  /** Room taken earlier by reserve(); the submitted items come out of it instead of being admitted again. */
  reservation?: Reservation;
}

/** Room for a request's items, held from admission until they are submitted or the request ends. */
export interface Reservation {
  /** Items not yet submitted. */
  readonly remaining: number;
  /** Gives back whatever was not submitted; safe to call more than once. */
  release(): void;
}

interface Entry<P, R> {
  payload: P;
  items: number;
  key: string;
  resolve(result: R): void;
  reject(err: unknown): void;
  /** Set once the caller stopped waiting; the entry is then skipped. */
  abandoned: boolean;
  cleanup(): void;
}

/** A reservation of one batcher; `giveBack` returns items to its count. */
class HeldRoom implements Reservation {
  constructor(
    private left: number,
    /** `released`: the items leave for good (true) or move into the queue (false). */
    private readonly giveBack: (items: number, released: boolean) => void,
  ) {}

  get remaining(): number {
    return this.left;
  }

  /** Submitted items leave the reservation (and enter the queue). */
  take(items: number): void {
    if (items > this.left) throw new Error(`submitting ${items} items from a reservation of ${this.left}`);
    this.left -= items;
    this.giveBack(items, false);
  }

  release(): void {
    this.giveBack(this.left, true);
    this.left = 0;
  }
}

export class MicroBatcher<P, R> {
  private readonly queue: Entry<P, R>[] = [];
  private queuedItems = 0;
  /** Items of admitted requests not yet submitted (being decoded and cropped, say). */
  private reservedItems = 0;
  private running = false;
  private timer: NodeJS.Timeout | undefined;
  private avgBatchMs = 0;
  /** Set by drain(): why new requests are refused (shutting down, the model being unloaded). */
  private closedReason: string | undefined;
  private idleWaiters: (() => void)[] = [];

  constructor(private readonly options: BatcherOptions<P, R>) {}

  get depth(): number {
    return this.queuedItems;
  }

  /** Items reserved by admitted requests and not yet submitted. */
  get reserved(): number {
    return this.reservedItems;
  }

  /**
   * Admits a whole request of `items` at once, before any work is done for it: throws `too_large`
   * when it could never fit (more than maxQueue), `overloaded` (with a Retry-After hint) when it
   * does not fit now. The room is held until submitted or released.
   */
  reserve(items: number, unit = 'images'): Reservation {
    this.admit(items, unit);
    this.reservedItems += items;
    return new HeldRoom(items, (n, released) => {
      this.reservedItems -= n;
      if (released) this.notifyIdle(); // a drain may be waiting for the last admitted request to end
    });
  }

  private admit(items: number, unit: string): void {
    if (this.closedReason !== undefined) throw new FqError('unavailable', this.closedReason, { retryAfterSeconds: 1 });
    const { maxQueue } = this.options;
    if (items > maxQueue) {
      throw new FqError('too_large', `this request needs room for ${items} ${unit} and the queue holds at most ${maxQueue} (FQ_MAX_QUEUE)`);
    }
    const held = this.queuedItems + this.reservedItems;
    if (held + items > maxQueue) {
      throw new FqError(
        'overloaded',
        `the queue cannot take ${items} more ${unit} now: ${this.queuedItems} waiting to run and ${this.reservedItems} being prepared, of at most ${maxQueue}; retry later`,
        { retryAfterSeconds: this.retryAfterSeconds() },
      );
    }
  }

  submit(payload: P, items: number, options: SubmitOptions = {}): Promise<R> {
    if (items > this.options.maxBatch) {
      return Promise.reject(new Error(`entry of ${items} items exceeds maxBatch ${this.options.maxBatch}`));
    }
    // An admitted request may still submit what it reserved while the batcher drains; nothing else may.
    const admitted = options.reservation instanceof HeldRoom && options.reservation.remaining >= items;
    if (this.closedReason !== undefined && !admitted) {
      return Promise.reject(new FqError('unavailable', this.closedReason, { retryAfterSeconds: 1 }));
    }
    if (options.signal?.aborted) return Promise.reject(abortReason(options.signal));
    try {
      if (options.reservation instanceof HeldRoom) options.reservation.take(items);
      else if (options.reservation) throw new Error('a reservation from another batcher');
      else this.admit(items, 'images');
    } catch (err) {
      return Promise.reject(err);
    }

    return new Promise<R>((resolve, reject) => {
      const onAbort = () => {
        const reason = abortReason(options.signal!);
        this.abandon(entry, reason.kind === 'timeout' ? 'timeout' : 'aborted', reason);
      };
      const entry: Entry<P, R> = {
        payload,
        items,
        key: this.options.keyOf?.(payload) ?? '',
        resolve,
        reject,
        abandoned: false,
        cleanup: () => options.signal?.removeEventListener('abort', onAbort),
      };
      options.signal?.addEventListener('abort', onAbort, { once: true });
      this.queue.push(entry);
      this.queuedItems += items;
      this.schedule();
    });
  }

  /**
   * Stops admitting requests (they are refused as `unavailable` with `reason`); resolves when everything
   * admitted has run: the queue, the running batch, and the items reserved by admitted requests, which
   * are submitted or released when those requests end.
   */
  async drain(reason = 'the server is shutting down'): Promise<void> {
    this.closedReason ??= reason;
    if (this.idle()) return;
    await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }

  private idle(): boolean {
    return !this.running && this.queue.length === 0 && this.reservedItems === 0;
  }

  private abandon(entry: Entry<P, R>, reason: 'aborted' | 'timeout', err: FqError): void {
    if (entry.abandoned) return;
    entry.abandoned = true;
    entry.cleanup();
    const index = this.queue.indexOf(entry);
    if (index >= 0) {
      this.queue.splice(index, 1);
      this.queuedItems -= entry.items;
    }
    this.options.onDropped?.(reason);
    entry.reject(err);
  }

  private retryAfterSeconds(): number {
    const batchesAhead = Math.ceil((this.queuedItems + this.reservedItems) / this.options.maxBatch) + 1;
    return Math.max(1, Math.ceil((batchesAhead * this.avgBatchMs) / 1000));
  }

  private schedule(): void {
    if (this.running || this.queue.length === 0) return;
    if (this.queuedItems >= this.options.maxBatch || this.closedReason !== undefined) {
      this.dispatch();
    } else if (!this.timer) {
      this.timer = setTimeout(() => this.dispatch(), this.options.maxWaitMs);
    }
  }

  private takeBatch(): Entry<P, R>[] {
    const head = this.queue[0];
    if (!head) return [];
    const batch: Entry<P, R>[] = [];
    let items = 0;
    for (let i = 0; i < this.queue.length; ) {
      const entry = this.queue[i]!;
      if (entry.key === head.key && items + entry.items <= this.options.maxBatch) {
        batch.push(entry);
        items += entry.items;
        this.queue.splice(i, 1);
        this.queuedItems -= entry.items;
      } else {
        i++;
      }
    }
    return batch;
  }

  private dispatch(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.running) return;
    const batch = this.takeBatch();
    if (batch.length === 0) return this.notifyIdle();
    this.running = true;
    for (const entry of batch) entry.cleanup(); // once running, a batch finishes; late results are discarded
    const items = batch.reduce((n, e) => n + e.items, 0);
    const started = performance.now();
    this.options
      .run(batch.map((e) => e.payload))
      .then(
        (results) => batch.forEach((e, i) => e.resolve(results[i] as R)),
        (err) => batch.forEach((e) => e.reject(err)),
      )
      .finally(() => {
        const ms = performance.now() - started;
        this.avgBatchMs = this.avgBatchMs === 0 ? ms : 0.8 * this.avgBatchMs + 0.2 * ms;
        this.options.onBatch?.(items, ms);
        this.running = false;
        if (this.queue.length > 0) this.schedule();
        else this.notifyIdle();
      });
  }

  private notifyIdle(): void {
    if (!this.idle()) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    waiters.forEach((w) => w());
  }
}
