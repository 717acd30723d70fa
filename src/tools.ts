import { existsSync } from 'node:fs';
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
