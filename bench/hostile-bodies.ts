// Hostile bodies (issue 16, items 1 and 4): for each, the longest /healthz stall while it is sent and the
// server's peak RSS. Prints one JSON object.
//
//   node --import tsx bench/hostile-bodies.ts [--root DIR] [--timeout-s 60] [--only TEXT] [--slow-clients]
//
// Each body goes to a fresh server (`src/main.ts` of --root, default this checkout: point it at an
// export of another commit to compare), so that each peak RSS is that body's alone (the kernel's peak is
// reset once the server is up, /proc/PID/clear_refs). A request still unanswered after --timeout-s is
// abandoned and its stall reported as at least that long; the server is then killed.
// --slow-clients adds item 4: 20 connections that send 63 of a declared 64 MiB and stall (how long the
// server holds them and the memory they take), and a client that never reads a ?format=npz archive.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { cpus, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { writeNpz } from '../src/formats/npz.ts';
import { hostileBodies, type HostileBody } from '../test/helpers/hostile-bodies.ts';
import { startLoopProbe } from '../test/helpers/loop-probe.ts';

const { values } = parseArgs({
  options: {
    root: { type: 'string', default: path.resolve(import.meta.dirname, '..') },
    'timeout-s': { type: 'string', default: '60' },
    only: { type: 'string' },
    'slow-clients': { type: 'boolean', default: false },
  },
});
const root = path.resolve(values.root!);
const timeoutMs = Number(values['timeout-s']) * 1000;
// The machine may be shared: the load average says how much of it was ours.
const loadAverage = () => loadavg().map((l) => Number(l.toFixed(2)));
const loadAtStart = loadAverage();

interface Server {
  url: string;
  child: ChildProcess;
  stop(): Promise<void>;
}

/** Servers not yet stopped: a measurement given up on (see `bounded`) leaves its server here, to be killed. */
const liveServers = new Set<ChildProcess>();

async function startServer(env: Record<string, string> = {}): Promise<Server> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'fqtok-bench-hostile-'));
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'src/main.ts')], {
    cwd: root,
    env: { ...process.env, FQ_PORT: '0', FQ_HOST: '127.0.0.1', FQ_LOG_LEVEL: 'info', FQ_LOG_FORMAT: 'json', FQ_DATA_DIR: dataDir, ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  liveServers.add(child);
  child.once('exit', () => liveServers.delete(child));
  let log = '';
  const port = await new Promise<number>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      log += chunk.toString();
      const match = /"port":(\d+).*fqtok listening/.exec(log);
      if (!match) return;
      child.stderr!.off('data', onData);
      child.stderr!.resume();
      resolve(Number(match[1]));
    };
    child.stderr!.on('data', onData);
    child.once('exit', () => reject(new Error(`server exited:\n${log}`)));
  });
  return {
    url: `http://127.0.0.1:${port}`,
    child,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL'); // a stalled server would not answer SIGTERM for hours
        await once(child, 'exit');
      }
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

const rssMb = (pid: number, field: 'VmRSS' | 'VmHWM') => {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Math.round(Number(m[1]) / 1024) : NaN;
};

/** Resets the kernel's peak RSS of `pid` to its current RSS (Linux >= 4.0); false where not allowed. */
function resetPeak(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

interface Answer {
  status: number | null;
  detail?: string;
  ms: number;
  timedOut: boolean;
}

function send(url: string, body: HostileBody): Promise<Answer> {
  const started = performance.now();
  return new Promise((resolve) => {
    const req = request(url + body.route, { method: 'POST', headers: { 'content-type': body.contentType, 'content-length': String(body.bytes.length) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        clearTimeout(timer);
        let detail: string | undefined;
        try {
          detail = (JSON.parse(Buffer.concat(chunks).toString()) as { detail?: string }).detail?.slice(0, 200);
        } catch {
          /* not a problem document */
        }
        resolve({ status: res.statusCode ?? null, detail, ms: performance.now() - started, timedOut: false });
      });
    });
    const timer = setTimeout(() => {
      req.destroy();
      resolve({ status: null, ms: performance.now() - started, timedOut: true });
    }, timeoutMs);
    req.on('error', () => undefined); // an early answer while we still send: the response handler has it
    req.end(body.bytes);
  });
}

/** One small good request of each kind, so that what is measured is the body, not a cold start (workers loading, code compiling). */
async function warmUp(url: string): Promise<void> {
  const grid = { shape: [1, 256], data: new Int32Array(256) };
  const npz = writeNpz({ vis: grid, sem_mid: grid, sem_high: grid });
  const json = JSON.stringify({ tokens: { vis: [Array(256).fill(0)], sem_mid: [Array(256).fill(0)], sem_high: [Array(256).fill(0)] } });
  for (const route of ['/decode', '/stats']) {
    for (const [type, body] of [['application/x-npz', npz], ['application/json', json]] as const) {
      const res = await fetch(url + route, { method: 'POST', headers: { 'content-type': type }, body: body as BodyInit });
      if (res.status !== 200) throw new Error(`warm-up ${route} (${type}) answered ${res.status}: ${await res.text()}`);
      await res.arrayBuffer();
    }
  }
}

async function measureBody(body: HostileBody) {
  const server = await startServer();
  try {
    await warmUp(server.url);
    const pid = server.child.pid!;
    const baseline = rssMb(pid, 'VmRSS');
    const peakReset = resetPeak(pid);
    let polledPeak = baseline;
    const poll = setInterval(() => {
      polledPeak = Math.max(polledPeak, rssMb(pid, 'VmRSS'));
    }, 10);
    const probe = await startLoopProbe(server.url, pid);
    let answer: Answer;
    let stall;
    try {
      answer = await send(server.url, body);
      await new Promise((r) => setTimeout(r, 500)); // work the server may still do after answering
      stall = await probe.stop();
    } finally {
      probe.kill();
      clearInterval(poll);
    }
    const peak = peakReset ? rssMb(pid, 'VmHWM') : polledPeak;
    return {
      body: body.name,
      route: body.route,
      bytes: body.bytes.length,
      status: answer.status,
      detail: answer.detail,
      answered_ms: Math.round(answer.ms),
      timed_out: answer.timedOut,
      healthz_max_stall_ms: Math.round(stall.maxMs),
      healthz_own_stall_ms: Math.round(stall.ownStallMs),
      healthz_probes: stall.probes,
      probe_priority_raised: probe.raised,
      rss_before_mb: baseline,
      peak_rss_mb: peak,
      rss_after_mb: rssMb(pid, 'VmRSS'),
      issue_saw: body.before,
    };
  } finally {
    await server.stop();
  }
}

/** Item 4: 20 connections each send 63 MiB of a declared 64 MiB body, then stall. */
async function stalledUploads() {
  const server = await startServer();
  try {
    const pid = server.child.pid!;
    const baseline = rssMb(pid, 'VmRSS');
    resetPeak(pid);
    const declared = 64 * 2 ** 20;
    const chunk = Buffer.alloc(2 ** 20, 1);
    const started = performance.now();
    const outcomes = await Promise.all(
      Array.from({ length: 20 }, () =>
        new Promise<{ status: number | null; closedAfterMs: number | null }>((resolve) => {
          let status: number | null = null;
          const req = request(`${server.url}/decode`, { method: 'POST', headers: { 'content-type': 'application/x-npz', 'content-length': String(declared) } }, (res) => {
            status = res.statusCode ?? null;
            res.resume();
          });
          const done = (closed: boolean) => {
            clearTimeout(timer);
            resolve({ status, closedAfterMs: closed ? Math.round(performance.now() - started) : null });
          };
          const timer = setTimeout(() => {
            req.destroy();
            done(false);
          }, timeoutMs);
          req.on('error', () => undefined);
          req.on('close', () => done(true));
          (async () => {
            for (let sent = 0; sent < 63 && !req.destroyed; sent++) {
              if (!req.write(chunk)) await once(req, 'drain').catch(() => undefined);
            }
          })();
        }),
      ),
    );
    return {
      scenario: '20 connections send 63 of 64 MiB and stall',
      statuses: outcomes.map((o) => o.status),
      closed_by_server_within_ms: outcomes.map((o) => o.closedAfterMs),
      window_ms: timeoutMs,
      rss_before_mb: baseline,
      peak_rss_mb: rssMb(pid, 'VmHWM'),
      rss_after_mb: rssMb(pid, 'VmRSS'),
    };
  } finally {
    await server.stop();
  }
}

/** Item 4: a client asks for a ?format=npz archive of 1,000 grids and never reads it. */
async function unreadArchive() {
  const grids = 1000;
  const server = await startServer({ FQ_MAX_IMAGES: String(grids), FQ_MAX_QUEUE: String(grids) });
  try {
    const pid = server.child.pid!;
    const baseline = rssMb(pid, 'VmRSS');
    resetPeak(pid);
    const tokens = { shape: [grids, 256], data: new Int32Array(grids * 256) };
    const body = writeNpz({ vis: tokens, sem_mid: tokens, sem_high: tokens });
    const started = performance.now();
    const closedAfterMs = await new Promise<number | null>((resolve) => {
      let poll: NodeJS.Timeout | undefined;
      const finish = (ms: number | null) => {
        clearInterval(poll);
        clearTimeout(window);
        req.destroy();
        resolve(ms);
      };
      const req = request(`${server.url}/decode?format=npz`, { method: 'POST', headers: { 'content-type': 'application/x-npz' } }, (res) => {
        res.pause(); // never read
        const { localPort, remotePort } = res.socket;
        poll = setInterval(() => {
          if (closedByServer(remotePort!, localPort!)) finish(Math.round(performance.now() - started));
        }, 100);
      });
      const window = setTimeout(() => finish(null), timeoutMs);
      req.on('error', () => undefined);
      req.end(body);
    });
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    const decoded = /^fqtok_images_processed_total\{[^}]*operation="decode"[^}]*\} (\S+)$/m.exec(metrics);
    return {
      scenario: `a ?format=npz archive of ${grids} grids that the client never reads`,
      closed_by_server_within_ms: closedAfterMs,
      window_ms: timeoutMs,
      grids_decoded: decoded ? Number(decoded[1]) : null,
      rss_before_mb: baseline,
      peak_rss_mb: rssMb(pid, 'VmHWM'),
    };
  } finally {
    await server.stop();
  }
}

/**
 * Whether the server has let go of the loopback connection between `serverPort` and the client's
 * `clientPort`, as the kernel sees the server's side: no longer ESTABLISHED (state 01 of /proc/net/tcp),
 * or gone. Its FIN waits behind the data the client never read, so the client's side cannot tell.
 */
function closedByServer(serverPort: number, clientPort: number): boolean {
  const hex = (port: number) => `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  const serverSide = readFileSync('/proc/net/tcp', 'utf8')
    .split('\n')
    .map((line) => line.trim().split(/\s+/))
    .find((fields) => fields[1]?.endsWith(hex(serverPort)) && fields[2]?.endsWith(hex(clientPort)));
  return serverSide === undefined || serverSide[3] !== '01';
}

/** A measurement that itself never ends (it should not, but a stalled server is what is measured) is reported, not waited on. */
async function bounded<T>(what: string, work: () => Promise<T>): Promise<T | { error: string }> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<{ error: string }>((resolve) => {
    timer = setTimeout(() => {
      for (const child of liveServers) child.kill('SIGKILL'); // its server must not burn a core under the next measurement
      resolve({ error: `${what}: the measurement did not end within ${timeoutMs / 1000 + 90} s` });
    }, timeoutMs + 90_000);
  });
  try {
    return await Promise.race([work(), limit]);
  } catch (err) {
    return { error: `${what}: ${(err as Error).message}` };
  } finally {
    clearTimeout(timer);
  }
}

const results = [];
for (const body of await hostileBodies()) {
  if (values.only && !`${body.route} ${body.name}`.includes(values.only)) continue;
  console.error(`measuring ${body.route} ${body.name}`);
  results.push(await bounded(`${body.route} ${body.name}`, () => measureBody(body)));
}
const slowClients = values['slow-clients'] ? [await bounded('stalled uploads', stalledUploads), await bounded('unread archive', unreadArchive)] : undefined;
console.log(
  JSON.stringify(
    {
      root,
      machine: `${cpus().length} cores (${cpus()[0]?.model ?? 'unknown'})`,
      load_average_at_start: loadAtStart,
      load_average_at_end: loadAverage(),
      timeout_s: timeoutMs / 1000,
      bodies: results,
      ...(slowClients ? { slow_clients: slowClients } : {}),
    },
    null,
    2,
  ),
);
