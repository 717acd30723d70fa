import { existsSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (where package.json lives); tools installed by scripts/setup.sh live below it. */
export const projectRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');

const venvBin = join(projectRoot, '.tools', 'venv', 'bin');

/**
 * Finds a binary installed by scripts/setup.sh (Temporal CLI, test server, rclone), letting an
 * environment variable override it, then falling back to PATH.
 */
export function toolPath(name: 'temporal' | 'temporal-test-server' | 'rclone'): string {
  const envName = `CUTOVER_${name.toUpperCase().replace(/-/g, '_')}_BIN`;
  const fromEnv = process.env[envName];
  if (fromEnv) return fromEnv;
  const local = join(venvBin, name);
  return existsSync(local) ? local : name;
}

/**
 * Directory of the newest installed PostgreSQL server binaries (Debian keeps them out of PATH),
 * or undefined when only PATH can help.
 */
export function postgresBinDir(): string | undefined {
  if (process.env.CUTOVER_PG_BIN) return process.env.CUTOVER_PG_BIN;
  const base = '/usr/lib/postgresql';
  if (!existsSync(base)) return undefined;
  const versions = readdirSync(base)
    .filter((v) => existsSync(join(base, v, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] ? join(base, versions[0], 'bin') : undefined;
}

/** Full path of a PostgreSQL program (initdb, postgres, pg_dump, pg_restore, pgbench). */
export function postgresTool(name: string): string {
  const dir = postgresBinDir();
  return dir && existsSync(join(dir, name)) ? join(dir, name) : name;
}
