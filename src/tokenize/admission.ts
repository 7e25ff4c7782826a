// The first two steps of every operation, in this order: admission (room in the model's queue for all
// the request's items, or a 413/503 at once) and then its deadline (one scope that aborts on the
// timeout or the client leaving). Validation and the run come after, inside the operation; HTTP and the
// CLI call the same operations, so the order is the same wherever a request came from.
import { FqError } from '../errors.ts';
import { admissionRefusals, operationDuration, viewsInFlight } from '../metrics.ts';
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
  const labels = { model: model.label, operation };
  const reservation = reserveCounted(model, operation, items, unit); // throws too_large or overloaded: nothing was done yet
  const scope = requestScope(limits);
  viewsInFlight.inc(labels, items);
  const stopTimer = operationDuration.startTimer(labels);
  let ended = false;
  return {
    signal: scope.signal,
    submit: { signal: scope.signal, reservation },
    stop: (reason) => scope.stop(reason),
    end() {
      reservation.release();
      scope.dispose();
      if (ended) return;
      ended = true;
      viewsInFlight.dec(labels, items);
      stopTimer();
    },
  };
}

/** model.reserve, with each refusal counted by its reason. */
function reserveCounted(model: ServedModel, operation: Operation, items: number, unit: string) {
  try {
    return model.reserve(operation, items, unit);
  } catch (err) {
    const reason = err instanceof FqError ? err.kind : 'error';
    admissionRefusals.inc({ model: model.label, operation, reason });
    throw err;
  }
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
  let refusal: { model: ServedModel; err: unknown } | undefined;
  for (const model of candidates) {
    try {
      model.reserve(operation, 1, unit).release();
      return;
    } catch (err) {
      refusal ??= { model, err };
    }
  }
  if (refusal !== undefined) {
    const reason = refusal.err instanceof FqError ? refusal.err.kind : 'error';
    admissionRefusals.inc({ model: refusal.model.label, operation, reason });
    throw refusal.err;
  }
}
