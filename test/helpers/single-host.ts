// The single-host example as real processes: three serving replicas and one admin instance of fqtok
// sharing one models folder, and Debian's nginx in front with deploy/single-host/nginx.conf (its ports
// swapped for free ones), started in its own prefix folder and ended in every outcome.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { startServerProcess, type ServerProcess } from './server-process.ts';
import { ROOT } from './server.ts';

export const NGINX_CONF = path.join(ROOT, 'deploy', 'single-host', 'nginx.conf');
export const NGINX = process.env.FQ_TEST_NGINX ?? '/usr/sbin/nginx';

/** A port nothing listens on now (nginx cannot report a port 0 it was given). */
export async function freePort(): Promise<number> {
  const server = net.createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** deploy/single-host/nginx.conf with its example ports replaced; each must be there exactly once. */
export async function renderNginxConf(ports: { lb: number; replicas: number[]; admin: number }): Promise<string> {
  let conf = await readFile(NGINX_CONF, 'utf8');
  const swaps: [string, number][] = [
    ['127.0.0.1:8080', ports.lb],
    ...ports.replicas.map((p, i): [string, number] => [`127.0.0.1:${8081 + i}`, p]),
    ['127.0.0.1:8090', ports.admin],
  ];
  for (const [from, to] of swaps) {
    const count = conf.split(from).length - 1;
    if (count !== 1) throw new Error(`${NGINX_CONF}: expected ${from} once, found it ${count} times`);
    conf = conf.replace(from, `127.0.0.1:${to}`);
  }
  return conf;
}

export interface NginxProcess {
  url: string;
  stderr(): string;
  close(): Promise<void>;
}

/** Starts nginx in the foreground with `conf`, in `runDir` (pid, temp files); resolves once it accepts connections. */
export async function startNginx(conf: string, runDir: string, port: number, timeoutMs = 15_000): Promise<NginxProcess> {
  await mkdir(path.join(runDir, 'tmp'), { recursive: true });
  // As root, nginx's workers run as nobody: they must reach the temp folders under runDir.
  await chmod(runDir, 0o755);
  await chmod(path.join(runDir, 'tmp'), 0o755);
  const confFile = path.join(runDir, 'nginx.conf');
  await writeFile(confFile, conf);
  // Its own process group, so that its workers are ended with it even after a SIGKILL.
  const child = spawn(NGINX, ['-p', `${runDir}/`, '-c', confFile, '-e', 'stderr'], { detached: true, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = once(child, 'exit');
  const signalGroup = (signal: NodeJS.Signals) => {
    try {
      process.kill(-child.pid!, signal);
    } catch {
      // already gone
    }
  };
  const close = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      signalGroup('SIGTERM');
      const timer = setTimeout(() => signalGroup('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    }
    signalGroup('SIGKILL'); // a worker left behind
  };
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`nginx exited at start:\n${stderr}`);
    const connected = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () => (socket.end(), resolve(true)));
      socket.on('error', () => resolve(false));
    });
    if (connected) break;
    if (Date.now() > deadline) {
      await close();
      throw new Error(`nginx did not accept connections within ${timeoutMs} ms:\n${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { url: `http://127.0.0.1:${port}`, stderr: () => stderr, close };
}

export interface SingleHost {
  lb: NginxProcess;
  admin: ServerProcess;
  replicas: ServerProcess[];
  /** Ends nginx and every fqtok process still running. */
  close(): Promise<void>;
}

/** Three replicas (FQ_ROLE=replica) and one admin instance on one models folder, nginx in front. */
export async function startSingleHost(options: { workDir: string; modelsDir: string; env?: Record<string, string>; adminEnv?: Record<string, string> }): Promise<SingleHost> {
  const common = { FQ_MODELS_DIR: options.modelsDir, FQ_LOG_LEVEL: 'info', FQ_LOG_FORMAT: 'json', FQ_INTRA_OP_THREADS: '1', ...options.env };
  const started: { process?: ServerProcess }[] = [];
  const launch = (env: Record<string, string>) => {
    const slot: { process?: ServerProcess } = {};
    started.push(slot);
    return startServerProcess({ ...common, ...env }).then((p) => (slot.process = p));
  };
  // nginx's workers (nobody, when the tests run as root) must reach the prefix folder inside it.
  await chmod(options.workDir, 0o755);
  let lb: NginxProcess | undefined;
  const close = async () => {
    await lb?.close();
    await Promise.all(started.map((s) => s.process?.close()));
  };
  try {
    const [admin, ...replicas] = await Promise.all([
      launch({ FQ_ROLE: 'admin', FQ_DATA_DIR: path.join(options.workDir, 'admin-data'), ...options.adminEnv }),
      ...[1, 2, 3].map((i) => launch({ FQ_ROLE: 'replica', FQ_DATA_DIR: path.join(options.workDir, `replica-${i}-data`) })),
    ]);
    const portOf = (p: ServerProcess) => Number(new URL(p.url).port);
    const lbPort = await freePort();
    const conf = await renderNginxConf({ lb: lbPort, replicas: replicas.map(portOf), admin: portOf(admin!) });
    lb = await startNginx(conf, path.join(options.workDir, 'nginx'), lbPort);
    return { lb, admin: admin!, replicas, close };
  } catch (err) {
    await close();
    throw err;
  }
}

export interface StreamResult {
  ok: number;
  /** Each failed request: its HTTP status, or the network error. */
  errors: string[];
  /** Successful answers per upstream address (nginx's X-Fqtok-Upstream). */
  byUpstream: Map<string, number>;
}

/**
 * Sends encode requests through `url` from `concurrency` clients, each one at a time, until `stop()`
 * says so (checked before each request) or `maxRequests` were sent.
 */
export async function encodeStream(url: string, body: Uint8Array<ArrayBuffer>, options: { concurrency: number; stop: (r: StreamResult) => boolean; maxRequests: number; query?: string }): Promise<StreamResult> {
  const result: StreamResult = { ok: 0, errors: [], byUpstream: new Map() };
  let sent = 0;
  const client = async () => {
    // A stream that only fails ends early: the test then fails on its errors, not on a timeout.
    while (sent < options.maxRequests && !options.stop(result) && result.errors.length <= 4 * options.concurrency) {
      sent++;
      try {
        const res = await fetch(`${url}/encode${options.query ?? ''}`, { method: 'POST', body, headers: { 'content-type': 'image/png' }, signal: AbortSignal.timeout(60_000) });
        await res.arrayBuffer();
        if (res.status !== 200) {
          result.errors.push(`HTTP ${res.status}`);
          continue;
        }
        result.ok++;
        const upstream = res.headers.get('x-fqtok-upstream') ?? '?';
        result.byUpstream.set(upstream, (result.byUpstream.get(upstream) ?? 0) + 1);
      } catch (err) {
        result.errors.push(String((err as Error).cause ?? err));
      }
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, client));
  return result;
}
