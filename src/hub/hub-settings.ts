// The Hugging Face environment, read as every Hub client reads it (HF_ENDPOINT, HF_HOME, HF_HUB_CACHE,
// HF_TOKEN, HF_HUB_OFFLINE), plus torch's cache (TORCH_HOME) for weights that live outside the Hub.
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';

export interface HubSettings {
  /** The Hub's base URL (HF_ENDPOINT). */
  endpoint: string;
  /** The cache of Hub files (HF_HUB_CACHE, else HF_HOME/hub): models--owner--name/{blobs,snapshots,refs}. */
  cacheDir: string;
  /** HF_TOKEN, else the token file `huggingface-cli login` wrote. */
  token: string | undefined;
  /** HF_HUB_OFFLINE: only the cache is read; nothing is fetched. */
  offline: boolean;
  /** torch's cache of downloaded weights (TORCH_HOME/hub/checkpoints), where torchvision keeps vgg16-397923af.pth. */
  torchCheckpointsDir: string;
}

/** huggingface_hub's notion of a true environment value. */
const isTrue = (value: string | undefined) => ['1', 'ON', 'YES', 'TRUE'].includes((value ?? '').trim().toUpperCase());

export function hubSettings(env: NodeJS.ProcessEnv = process.env): HubSettings {
  const xdgCache = env.XDG_CACHE_HOME || path.join(homedir(), '.cache');
  const hfHome = env.HF_HOME || path.join(xdgCache, 'huggingface');
  const cacheDir = env.HF_HUB_CACHE || env.HUGGINGFACE_HUB_CACHE || path.join(hfHome, 'hub');
  const torchHome = env.TORCH_HOME || path.join(xdgCache, 'torch');
  return {
    endpoint: (env.HF_ENDPOINT || 'https://huggingface.co').replace(/\/+$/, ''),
    cacheDir: path.resolve(cacheDir),
    token: env.HF_TOKEN?.trim() || readToken(env.HF_TOKEN_PATH || path.join(hfHome, 'token')),
    offline: isTrue(env.HF_HUB_OFFLINE),
    torchCheckpointsDir: path.resolve(torchHome, 'hub', 'checkpoints'),
  };
}

function readToken(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}
