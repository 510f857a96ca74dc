import { readdirSync, readFileSync } from 'node:fs';
import { isAlive } from './run-state.js';

/**
 * The supervisor is started detached, so it leads its own process group, and
 * every process of the stack carries RUN_DIR=<absolute run directory> in its
 * environment. A process in that group with that marker is ours: this is how
 * `make down` ends what a supervisor that died left behind, by pid, without
 * touching anything else (even if the group id was reused since).
 */

function hasProc(): boolean {
  try {
    readdirSync('/proc/self');
    return true;
  } catch {
    return false;
  }
}

/** True when the process runs with RUN_DIR=runDir (readable for our own processes, or as root). */
function markedFor(pid: number, runDir: string): boolean {
  try {
    return readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').includes(`RUN_DIR=${runDir}`);
  } catch {
    return false;
  }
}

/** Alive and not a zombie waiting for its parent (or init) to reap it. */
export function isRunning(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !['Z', 'X'].includes(stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3));
  } catch {
    return hasProc() ? false : isAlive(pid);
  }
}

/** Whether `pid` is alive and a process of the stack in runDir (only "alive" where there is no /proc). */
export function isStackProcess(pid: number, runDir: string): boolean {
  return hasProc() ? markedFor(pid, runDir) : isAlive(pid);
}

/** Live processes of the stack: in process group `groupId` and marked with runDir; undefined without /proc. */
export function stackProcesses(groupId: number, runDir: string): number[] | undefined {
  if (!hasProc()) {
    return undefined;
  }
  const members: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) {
      continue;
    }
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // "pid (comm) state ppid pgrp …": comm may contain spaces and parentheses.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[2]) === groupId && fields[0] !== 'Z' && markedFor(Number(entry), runDir)) {
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
 * SIGTERM every process of the stack, SIGKILL what is left after graceMs;
 * resolves with the pids it found once none is alive. Without /proc, falls
 * back to the pids the state file recorded.
 */
export async function endStackProcesses(
  groupId: number,
  runDir: string,
  knownPids: readonly number[],
  graceMs: number,
): Promise<number[]> {
  const targets = () => stackProcesses(groupId, runDir) ?? knownPids.filter(isAlive);
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
