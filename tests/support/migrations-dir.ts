import { cpSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const exampleMigrationsDir = fileURLToPath(new URL('../../migrations', import.meta.url));

/** A private copy of migrations/ (or an empty dir) that a test may change freely. */
export function scratchMigrations(files: Record<string, string> | 'examples' = 'examples'): string {
  const dir = mkdtempSync(join(tmpdir(), 'cutover-migrations-'));
  if (files === 'examples') cpSync(exampleMigrationsDir, dir, { recursive: true });
  else for (const [name, sql] of Object.entries(files)) writeFileSync(join(dir, name), sql);
  return dir;
}
