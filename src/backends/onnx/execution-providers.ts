// Which execution provider a model version runs on: each configured provider is checked against the
// CPU EP in a child process, refused with an error line when it fails or crashes, and the next one tried.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type { ExecutionProviderName } from '../../config.ts';
import { logger } from '../../logger.ts';
import { workerExecArgv } from '../../worker-exec-argv.ts';
import type { Manifest } from '../manifest.ts';
import { cudaTf32Off, pinCudaFp32 } from './cuda-fp32.ts';
import type { ProviderCheckRequest, ProviderCheckResult } from './provider-check.ts';

export interface ExecutionProviderSettings {
  executionProviders: ExecutionProviderName[];
  cudaDeviceId: number;
  /** WebGPU's preferredLayout; unset: onnxruntime's default. */
  webgpuLayout?: 'NCHW' | 'NHWC';
  intraOpThreads: number;
}

/** A provider as onnxruntime-node's executionProviders takes it (plain data: it crosses threads). */
export type ProviderEntry = 'cpu' | { name: 'cuda'; deviceId: number } | { name: 'webgpu'; preferredLayout?: 'NCHW' | 'NHWC' };

export function providerEntry(name: ExecutionProviderName, settings: ExecutionProviderSettings): ProviderEntry {
  if (name === 'cuda') return { name: 'cuda', deviceId: settings.cudaDeviceId };
  if (name === 'webgpu') return { name: 'webgpu', ...(settings.webgpuLayout ? { preferredLayout: settings.webgpuLayout } : {}) };
  return 'cpu';
}

// onnxruntime's WebGPU EP (1.30) crashes the process with SIGSEGV inside InferenceSession creation
// when two threads create sessions at once (about one start in five here, encoder and decoder
// created in parallel); one creation at a time, process-wide, avoids it.
let creations: Promise<unknown> = Promise.resolve();

/** Runs `create` after every earlier session creation of this process has finished. */
export function serialisedCreation<T>(create: () => Promise<T>): Promise<T> {
  const next = creations.then(create, create);
  creations = next.catch(() => undefined);
  return next;
}

const CHECK_SCRIPT = fileURLToPath(new URL('./provider-check.ts', import.meta.url));
const CHECK_TIMEOUT_MS = 300_000;
const STDERR_KEEP = 16_384;

/** The CUDA EP is a separate library that `npm ci` only fetches with ONNXRUNTIME_NODE_INSTALL=cuda12. */
function missingCudaLibrary(): string | undefined {
  if (process.platform !== 'linux') return undefined; // the check itself will say
  const root = path.dirname(createRequire(import.meta.url).resolve('onnxruntime-node/package.json'));
  const library = path.join(root, 'bin', 'napi-v6', 'linux', process.arch, 'libonnxruntime_providers_cuda.so');
  return existsSync(library) ? undefined : `the CUDA EP is not installed (no ${library}; install with ONNXRUNTIME_NODE_INSTALL=cuda12 npm ci)`;
}

/** onnxruntime's own error lines (e.g. "libcudnn.so.9: cannot open shared object file"), which the binding's message omits. */
function runtimeErrors(stderr: string): string {
  const clean = stderr.replace(/\x1b\[[0-9;]*m/g, '');
  return clean
    .split('\n')
    .filter((line) => /\[E:onnxruntime|error/i.test(line))
    .map((line) => line.replace(/^.*?\] /, '').trim())
    .slice(-3)
    .join(' | ')
    .slice(0, 600);
}

interface Verdict {
  ok: boolean;
  reason?: string;
  result?: ProviderCheckResult;
}

/** Runs provider-check.ts in a child process; a crash, hang or error is a refusal with its reason. */
function runCheck(request: ProviderCheckRequest): Promise<Verdict> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [...workerExecArgv(), CHECK_SCRIPT], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-STDERR_KEEP)));
    const timer = setTimeout(() => child.kill('SIGKILL'), CHECK_TIMEOUT_MS);
    child.on('error', (err) => {
      clearTimeout(timer);
      resolve({ ok: false, reason: `could not start the check: ${err.message}` });
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const line = stdout.trim().split('\n').pop() ?? '';
      let answer: (ProviderCheckResult & { error?: string }) | undefined;
      try {
        answer = line ? JSON.parse(line) : undefined;
      } catch {
        answer = undefined;
      }
      const details = runtimeErrors(stderr);
      if (answer?.error !== undefined) {
        resolve({ ok: false, reason: [answer.error.split('\n')[0], details].filter(Boolean).join(': ') });
      } else if (answer && code === 0) {
        resolve({ ok: answer.ok, reason: answer.reason, result: answer });
      } else {
        const how = signal === 'SIGKILL' ? `did not finish within ${CHECK_TIMEOUT_MS / 1000} s` : signal ? `crashed (${signal})` : `exited with code ${code}`;
        resolve({ ok: false, reason: [`the check process ${how}`, details || stderr.trim().split('\n').slice(-2).join(' | ')].filter(Boolean).join(': ') });
      }
    });
    child.stdin.end(JSON.stringify(request));
  });
}

export interface ChosenProvider {
  name: ExecutionProviderName;
  entry: ProviderEntry;
  /** The provider the configuration asked for first. */
  requested: ExecutionProviderName;
  /** Why each provider before the chosen one was refused ("cuda: ..."), when any was. */
  fallback?: string;
}

/**
 * The first provider of the configured list that starts and agrees with the CPU EP on this model;
 * CPU when none does (it is the reference, so it is never checked).
 */
export async function chooseExecutionProvider(label: string, modelDir: string, manifest: Manifest, settings: ExecutionProviderSettings): Promise<ChosenProvider> {
  const requested = settings.executionProviders[0]!;
  const refusals: string[] = [];
  const fallback = () => (refusals.length > 0 ? { fallback: refusals.join('; ') } : {});
  for (const name of settings.executionProviders) {
    if (name === 'cpu') break;
    if (name === 'cuda') pinCudaFp32(); // before the check's child process and any session exist
    const entry = providerEntry(name, settings);
    const verdict = await serialisedCreation(() =>
      runCheck({ modelDir, encoder: manifest.encoder, decoder: manifest.decoder, imageSize: manifest.image_size, provider: entry, intraOpThreads: settings.intraOpThreads }),
    );
    const hint = name === 'cuda' && !verdict.ok ? missingCudaLibrary() : undefined;
    if (hint) verdict.reason = `${verdict.reason} (${hint})`;
    const precision = name === 'cuda' ? { tf32: cudaTf32Off() ? 'off' : 'as the environment sets it' } : {};
    if (verdict.ok) {
      logger.info({ model: label, provider: name, ...precision, check: verdict.result }, 'execution provider agrees with the CPU EP');
      return { name, entry, requested, ...fallback() };
    }
    // Loud: the operator asked for this provider and the model will run elsewhere, likely much slower.
    logger.error({ model: label, provider: name, ...precision, reason: verdict.reason, check: verdict.result }, 'execution provider refused, trying the next');
    refusals.push(`${name}: ${verdict.reason ?? 'refused'}`);
  }
  return { name: 'cpu', entry: 'cpu', requested, ...fallback() };
}
