// Admission to reading image files: a free worker thread and room in the budget of decoded pixels in flight, first come first served.
//
// Why here and not in piscina: piscina's own queue can only cancel a queued task by the same abort
// that terminates a running worker (and a new worker costs a warm-up), and it knows nothing of image
// sizes. So tasks reach the pool only when a thread is free, the caller's signal is checked at that
// moment, and an image just under FQ_MAX_INPUT_PIXELS (~190 MB decoded) waits while others hold the budget.
import { abortReason } from '../errors.ts';

export interface ReadGateOptions {
  /** Decodes at once (the pool's threads). */
  slots: number;
  /** Most decoded pixels (width * height, summed over images being decoded) at once. */
  pixelBudget: number;
  /** Called whenever the state changes (for gauges). */
  onChange?(state: GateState): void;
}

export interface GateState {
  decodes: number;
  pixels: number;
  waiting: number;
}

interface Waiter {
  pixels: number;
  grant(): void;
}

export class ReadGate {
  private busySlots = 0;
  private pixelsInFlight = 0;
  private readonly waiters: Waiter[] = [];

  constructor(private readonly options: ReadGateOptions) {}

  get state(): GateState {
    return { decodes: this.busySlots, pixels: this.pixelsInFlight, waiting: this.waiters.length };
  }

  /**
   * Waits for a slot and `pixels` of budget (after everyone who came earlier); resolves with the
   * function that gives them back. Rejects with the signal's reason if it aborts first. An image
   * larger than the whole budget goes when nothing else is decoding, so it is never stuck.
   */
  acquire(pixels: number, signal?: AbortSignal): Promise<() => void> {
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        pixels,
        grant: () => {
          signal?.removeEventListener('abort', onAbort);
          this.busySlots++;
          this.pixelsInFlight += pixels;
          let released = false;
          resolve(() => {
            if (released) return;
            released = true;
            this.busySlots--;
            this.pixelsInFlight -= pixels;
            this.pump();
          });
        },
      };
      const onAbort = () => {
        const index = this.waiters.indexOf(waiter);
        if (index >= 0) this.waiters.splice(index, 1);
        reject(abortReason(signal!));
        this.pump(); // a large waiter leaving may let smaller ones behind it go
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(waiter);
      this.pump();
    });
  }

  private fits(pixels: number): boolean {
    if (this.busySlots >= this.options.slots) return false;
    return this.pixelsInFlight === 0 || this.pixelsInFlight + pixels <= this.options.pixelBudget;
  }

  private pump(): void {
    while (this.waiters.length > 0 && this.fits(this.waiters[0]!.pixels)) this.waiters.shift()!.grant();
    this.options.onChange?.(this.state);
  }
}
