// The first two steps of every operation, in this order: admission (room in the model's queue for all
// the request's items, or a 413/503 at once) and then its deadline (one scope that aborts on the
// timeout or the client leaving). Validation and the run come after, inside the operation; HTTP and the
// CLI call the same operations, so the order is the same wherever a request came from.
import type { SubmitOptions } from '../serving/batcher.ts';
import { requestScope, type RequestLimits } from '../serving/request-scope.ts';
import type { Operation, ServedModel } from '../serving/served-model.ts';

export type { RequestLimits };

export interface Admission {
  /** Aborts (with an FqError reason) at the deadline, when the client leaves, or on stop(). */
  readonly signal: AbortSignal;
  /** For the model's encode()/decode(): the signal and the room taken at admission. */
  readonly submit: SubmitOptions;
  /** Stops the rest of the work (one part failed, so the others need not run). */
  stop(reason: string): void;
  /** Gives back the room not used and clears the deadline; call once when the work ends, whatever the outcome. */
  end(): void;
}

/** Admits `items` (counted in `unit`, for the refusal's message) to `model`'s `operation` queue, then starts the deadline. */
export function admit(model: ServedModel, operation: Operation, items: number, unit: string, limits: RequestLimits): Admission {
  const reservation = model.reserve(operation, items, unit); // throws too_large or overloaded: nothing was done yet
  const scope = requestScope(limits);
  return {
    signal: scope.signal,
    submit: { signal: scope.signal, reservation },
    stop: (reason) => scope.stop(reason),
    end() {
      reservation.release();
      scope.dispose();
    },
  };
}

/** Runs `work` admitted, and ends the admission when it settles. */
export async function withAdmission<T>(
  model: ServedModel,
  operation: Operation,
  items: number,
  unit: string,
  limits: RequestLimits,
  work: (admission: Admission) => Promise<T>,
): Promise<T> {
  const admission = admit(model, operation, items, unit, limits);
  try {
    return await work(admission);
  } finally {
    admission.end();
  }
}

/**
 * Refuses a request before its body is read when no model it could name has room for even one item:
 * under overload most requests are refused, and reading and parsing their uploads would take CPU from
 * the requests being served. A request that passes is admitted whole, or refused, once it is counted.
 */
export function refuseWhenFull(candidates: ServedModel[], operation: Operation, unit: string): void {
  let refusal: unknown;
  for (const model of candidates) {
    try {
      model.reserve(operation, 1, unit).release();
      return;
    } catch (err) {
      refusal ??= err;
    }
  }
  if (refusal !== undefined) throw refusal;
}
