// Reads token arrays from a request body (JSON: an /encode response as it is, or arrays per codebook; or NPZ), parsed off the event loop.
import type { Context } from 'hono';
import { FqError } from '../errors.ts';
import type { AppDeps } from './app-deps.ts';
import type { TokenBody, TokenLimits } from './body-parser.ts';
import { requestMediaType } from './options.ts';
import { readBody } from './body-guard.ts';

export type TokenInput = TokenBody;

/**
 * What a request's token arrays may hold: FQ_MAX_IMAGES grids of the largest grid a served model has
 * (the exact count against the named model's grid is checked once the layout is resolved).
 */
export function tokenLimits(deps: Pick<AppDeps, 'config' | 'registry'>): TokenLimits {
  const { maxImages, maxBodyBytes } = deps.config;
  const cells = Math.max(1, ...deps.registry.all().map((m) => m.model.manifest.grid[0] * m.model.manifest.grid[1]));
  return {
    maxInflatedBytes: maxBodyBytes,
    maxValues: maxImages * cells,
    limitText: `a request holds at most ${maxImages} grids of ${cells} tokens (FQ_MAX_IMAGES)`,
  };
}

export async function readTokenInput(c: Context, deps: Pick<AppDeps, 'config' | 'registry' | 'bodies'>): Promise<TokenInput> {
  const type = requestMediaType(c);
  const format = type === 'application/json' ? 'json' : type === 'application/x-npz' || type === 'application/octet-stream' ? 'npz' : undefined;
  if (!format) {
    throw new FqError('unsupported_media_type', `content type '${type || '(none)'}' is not accepted; send application/json or application/x-npz`);
  }
  return deps.bodies.tokens(await readBody(c), format, tokenLimits(deps));
}
