// Process sessions seen through /proc: which processes a started trainer (a session leader) still has.
import { readdirSync, readFileSync } from 'node:fs';

/** Live (not zombie) processes whose session id is `sid`. */
export function sessionMembers(sid: number): number[] {
  const found: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${name}/stat`, 'utf8');
    } catch {
      continue; // exited while we looked
    }
    // Fields after "(comm) ": state ppid pgrp session ...
    const [state, , , session] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (state !== 'Z' && Number(session) === sid) found.push(Number(name));
  }
  return found;
}

/** Polls until the session is empty or `ms` passed; returns what is left. */
export async function waitUntilSessionGone(sid: number, ms: number): Promise<number[]> {
  const deadline = Date.now() + ms;
  for (;;) {
    const left = sessionMembers(sid);
    if (!left.length || Date.now() > deadline) return left;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** SIGKILL to every member of the session (its process group and any stragglers). */
export function killSession(sid: number): void {
  for (const pid of [-sid, ...sessionMembers(sid)]) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}
