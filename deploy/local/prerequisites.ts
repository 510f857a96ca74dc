import { spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

/** True when `name` is an executable on PATH. */
export function hasCommand(name: string, path = process.env.PATH ?? ''): boolean {
  return path
    .split(delimiter)
    .filter(Boolean)
    .some((dir) => {
      try {
        accessSync(join(dir, name), constants.X_OK);
        return true;
      } catch {
        return false;
      }
    });
}

/** Debian/Ubuntu package of each command the stack may need. */
const PACKAGES: Record<string, string> = { caddy: 'caddy', 'redis-server': 'redis-server' };

/**
 * Makes sure the commands exist: installs the missing ones with apt-get when
 * running as root on a Debian-like system, else returns the exact command the
 * user must run (and nothing is installed).
 */
export function ensureCommands(
  commands: readonly string[],
  write: (line: string) => void,
  asRoot = process.getuid?.() === 0,
): { ok: true } | { ok: false; instructions: string } {
  const missing = commands.filter((command) => !hasCommand(command));
  if (missing.length === 0) {
    return { ok: true };
  }
  const packages = missing.map((command) => PACKAGES[command] ?? command);
  const installed = aptInstall(packages, write, asRoot);
  if (installed.ok && missing.every((command) => hasCommand(command))) {
    return { ok: true };
  }
  if (installed.ok) {
    return {
      ok: false,
      instructions: `apt-get installed ${packages.join(', ')}, but ${missing.join(', ')} is still not on PATH`,
    };
  }
  return {
    ok: false,
    instructions: installed.attempted
      ? installed.instructions
      : [
          `Missing: ${missing.join(', ')}. Install, then run make up again:`,
          `  sudo ${aptCommand(packages)}      # Debian, Ubuntu`,
          `  brew install ${packages.map((name) => (name === 'redis-server' ? 'redis' : name)).join(' ')}      # macOS`,
        ].join('\n'),
  };
}

/** The install command line for Debian packages. */
export function aptCommand(packages: readonly string[]): string {
  return `apt-get install -y --no-install-recommends ${packages.join(' ')}`;
}

/**
 * Installs Debian packages with apt-get when running as root where apt-get
 * exists; `attempted: false` when it could not try (then nothing was run).
 */
export function aptInstall(
  packages: readonly string[],
  write: (line: string) => void,
  asRoot = process.getuid?.() === 0,
): { ok: true } | { ok: false; attempted: boolean; instructions: string } {
  const install = aptCommand(packages);
  if (!asRoot || !hasCommand('apt-get')) {
    return { ok: false, attempted: false, instructions: `sudo apt-get update && sudo ${install}` };
  }
  write(`Installing ${packages.join(', ')} with apt-get…`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const update = spawnSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
  const result =
    update.status === 0 ? spawnSync('sh', ['-c', install], { stdio: 'inherit', env }) : { status: update.status };
  return result.status === 0
    ? { ok: true }
    : { ok: false, attempted: true, instructions: `apt-get could not install ${packages.join(', ')}; try: ${install}` };
}
