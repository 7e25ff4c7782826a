// The life of one request's work: one signal that aborts when the client leaves, the deadline passes, or a part failed.
import { FqError } from '../errors.ts';

export interface RequestLimits {
  /** The client's signal (the HTTP request's). */
  signal?: AbortSignal;
  /** Longest time for the whole request's work (FQ_REQUEST_TIMEOUT_MS), preprocessing included. */
  timeoutMs?: number;
}

export interface RequestScope {
  /** Aborts with an FqError reason: 'timeout', or 'bad_request' (client gone, or stopped by the caller). */
  readonly signal: AbortSignal;
  /** Stops the remaining work (e.g. one image failed, so the others need not be decoded). */
  stop(reason: string): void;
  /** Clears the timer and listeners; call when the work ends. */
  dispose(): void;
}

export function requestScope(limits: RequestLimits): RequestScope {
  const controller = new AbortController();
  const abort = (reason: FqError) => {
    if (!controller.signal.aborted) controller.abort(reason);
  };
  const onClientGone = () => abort(new FqError('bad_request', 'the request was aborted'));
  if (limits.signal?.aborted) onClientGone();
  limits.signal?.addEventListener('abort', onClientGone, { once: true });
  const timer =
    limits.timeoutMs === undefined
      ? undefined
      : setTimeout(() => abort(new FqError('timeout', `not processed within ${limits.timeoutMs} ms`)), limits.timeoutMs);
  return {
    signal: controller.signal,
    stop: (reason) => abort(new FqError('bad_request', reason)),
    dispose() {
      if (timer) clearTimeout(timer);
      limits.signal?.removeEventListener('abort', onClientGone);
    },
  };
}
