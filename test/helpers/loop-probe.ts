// Measures how long a server's event loop stalls: a process of its own asks GET /healthz back to back
// on one keep-alive connection and reports the slowest answer. Its own process, so that whatever the
// caller does meanwhile (building or sending a 64 MiB body) does not delay the probe's clock.
//
// On a machine shared with other work, a server thread that is simply not scheduled for 80 ms looks like
// a stall too. So each probe also reads how long the server's main thread (the event loop) was on a CPU
// while the probe waited (/proc/PID/task/PID/schedstat): a loop blocked by its own work is on a CPU the
// whole time, a loop waiting for a CPU is not. `ownStallMs` is the longest probe counted only while the
// loop ran, the stall that is the server's own doing. Where allowed (root, as CI runs), the probe and the
// server's main thread also run at a raised priority.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { setPriority } from 'node:os';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';

export interface ProbeResult {
  /** Slowest /healthz round trip, in ms (a request still unanswered at stop counts as its time so far). */
  maxMs: number;
  /**
   * Over every probe, the longest time the server's main thread was on a CPU while the probe waited for
   * its answer (at most the probe's round trip): the stall its own work caused. Equal to maxMs where the
   * kernel does not report per-thread CPU time.
   */
  ownStallMs: number;
  probes: number;
}

export interface LoopProbe {
  /** Whether the probe and the server's main thread run at a raised priority. */
  readonly raised: boolean;
  /** Ends the probe and returns what it saw. */
  stop(): Promise<ProbeResult>;
  /** Ends the probe process without waiting for a result (cleanup after a failure). */
  kill(): void;
}

const SCRIPT = `
import http from 'node:http';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
const [url, pid] = process.argv.slice(1);
const schedstat = '/proc/' + pid + '/task/' + pid + '/schedstat';
const onCpuMs = () => { try { return Number(readFileSync(schedstat, 'utf8').split(' ')[0]) / 1e6; } catch { return NaN; } };
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
let max = 0, own = 0, probes = 0, started = 0, cpuAtStart = 0, stopping = false;
// A server whose loop was blocked runs its overdue keep-alive timer before it reads the next request,
// closing the idle socket under it: that request is sent again on a new socket, its clock still running.
const ask = (resolve, reject) => {
  const req = http.get(url + '/healthz', { agent }, (res) => { res.resume(); res.on('end', resolve); });
  req.on('error', (err) => (req.reusedSocket && (err.code === 'ECONNRESET' || err.code === 'EPIPE') ? ask(resolve, reject) : reject(err)));
};
const once = () => new Promise((resolve, reject) => {
  started = performance.now();
  cpuAtStart = onCpuMs();
  ask(resolve, reject);
});
const account = () => {
  const ms = performance.now() - started;
  const busy = onCpuMs() - cpuAtStart;
  max = Math.max(max, ms);
  own = Math.max(own, Number.isNaN(busy) ? ms : Math.min(ms, busy));
};
const report = (extra) => process.stdout.write(JSON.stringify({ maxMs: max, ownStallMs: own, probes, ...extra }) + '\\n');
createInterface({ input: process.stdin }).on('line', () => { stopping = true; });
(async () => {
  for (;;) {
    await once();
    account();
    if (++probes === 1) process.stdout.write('ready\\n');
    if (stopping) break;
    await new Promise((r) => setTimeout(r, 5));
  }
  report({});
  process.exit(0);
})().catch((err) => { process.stdout.write(JSON.stringify({ error: String(err) }) + '\\n'); process.exit(1); });
process.on('SIGTERM', () => {
  account(); // still waiting on a stalled server: what it waited so far is the stall
  report({ unanswered: true });
  process.exit(0);
});
`;

/** Raises the priority of one thread (a process's main thread is its pid); false where not allowed. */
export function raisePriority(tid: number): boolean {
  try {
    setPriority(tid, -15);
    return true;
  } catch {
    return false;
  }
}

/** Starts probing `url` (the server's base URL, its process `serverPid`); resolves once the first probe was answered. */
export async function startLoopProbe(url: string, serverPid: number): Promise<LoopProbe> {
  if (!existsSync(`/proc/${serverPid}/task/${serverPid}/schedstat`)) {
    console.warn('loop-probe: no per-thread schedstat here; stalls are wall-clock times, waits for a CPU included');
  }
  const child = spawn(process.execPath, ['--input-type=module', '-e', SCRIPT, url, String(serverPid)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const raised = raisePriority(child.pid!) && raisePriority(serverPid);
  const next = lineReader(child.stdout);
  const running = () => child.exitCode === null && child.signalCode === null;
  const kill = () => {
    if (running()) child.kill('SIGKILL');
  };
  try {
    let timer: NodeJS.Timeout | undefined;
    const first = await Promise.race([
      next(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${url}/healthz did not answer within 10 s: the server is already stalled`)), 10_000);
      }),
    ]).finally(() => clearTimeout(timer));
    if (first !== 'ready') throw new Error(`the /healthz probe said ${first}`);
  } catch (err) {
    kill();
    throw err;
  }
  return {
    raised,
    kill,
    async stop() {
      const answer = next();
      child.stdin.write('stop\n');
      // A probe stuck behind a stalled server cannot finish its request: SIGTERM makes it report.
      const timer = setTimeout(() => child.kill('SIGTERM'), 2_000);
      try {
        const result = JSON.parse(await answer) as ProbeResult & { error?: string };
        if (result.error) throw new Error(`the /healthz probe failed: ${result.error}`);
        return { maxMs: result.maxMs, ownStallMs: result.ownStallMs, probes: result.probes };
      } finally {
        clearTimeout(timer);
        if (running()) await once(child, 'exit');
      }
    },
  };
}

/**
 * The probe's output, one line per call, none lost: a line written before it was asked for (say, the
 * error of a probe that already exited) waits for the next call; once the output has ended, a call
 * fails at once instead of waiting for a line that cannot come.
 */
function lineReader(output: Readable): () => Promise<string> {
  const queued: string[] = [];
  let ended = false;
  let waiting: { resolve(line: string): void; reject(err: Error): void } | undefined;
  const noAnswer = () => new Error('the /healthz probe exited without an answer');
  const lines = createInterface({ input: output });
  lines.on('line', (line) => {
    if (waiting) waiting.resolve(line);
    else queued.push(line);
    waiting = undefined;
  });
  lines.on('close', () => {
    ended = true;
    waiting?.reject(noAnswer());
    waiting = undefined;
  });
  return () => {
    if (queued.length > 0) return Promise.resolve(queued.shift()!);
    if (ended) return Promise.reject(noAnswer());
    return new Promise((resolve, reject) => {
      waiting = { resolve, reject };
    });
  };
}
