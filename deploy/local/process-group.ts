import { readdirSync, readFileSync } from 'node:fs';
import { isAlive } from './run-state.js';

/**
 * The supervisor is started detached, so it leads its own process group and
 * every process of the stack belongs to that group. This finds and ends them
 * by pid, which is how `make down` cleans up after a supervisor that died
 * without stopping its children. Nothing outside the group is touched.
 */

/** Live pids whose process group is `groupId`, from /proc; undefined where there is no /proc. */
export function groupMembers(groupId: number): number[] | undefined {
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return undefined;
  }
  const members: number[] = [];
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) {
      continue;
    }
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // "pid (comm) state ppid pgrp …": comm may contain spaces and parentheses.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[2]) === groupId && fields[0] !== 'Z') {
        members.push(Number(entry));
      }
    } catch {
      // The process ended while we looked.
    }
  }
  return members;
}

function signal(pids: readonly number[], name: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, name);
    } catch {
      // Already gone.
    }
  }
}

/**
 * SIGTERM every member, SIGKILL what is left after graceMs; resolves when none
 * is alive. Without /proc, falls back to the pids the state file recorded.
 */
export async function endGroup(groupId: number, knownPids: readonly number[], graceMs: number): Promise<number[]> {
  const targets = () => groupMembers(groupId) ?? knownPids.filter(isAlive);
  const initial = targets();
  signal(initial, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (targets().length > 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  signal(targets(), 'SIGKILL');
  while (targets().length > 0 && Date.now() < deadline + 5000) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return initial;
}
