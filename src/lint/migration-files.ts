import { basename } from 'node:path';
import type { MigrationKind } from './types';

/**
 * The migration file format (defined by the runner): `NNNN_snake_name.up.sql` and
 * `NNNN_snake_name.down.sql`, NNNN a zero-padded version of at least 4 digits
 * (the same pattern as src/migrate/files.ts).
 */
const MIGRATION_FILE = /^(\d{4,})_([a-z0-9_]+)\.(up|down)\.sql$/;

export function parseMigrationFileName(
  path: string,
): { version: number; name: string; direction: 'up' | 'down' } | undefined {
  const m = MIGRATION_FILE.exec(basename(path));
  if (!m) return undefined;
  return { version: Number(m[1]), name: m[2]!, direction: m[3] as 'up' | 'down' };
}

export function migrationKind(path: string): MigrationKind {
  return parseMigrationFileName(path)?.direction ?? 'plain';
}

/**
 * Lint order: migrations by version, each up before its down; other .sql files after them in
 * the order given. Duplicates are linted once.
 */
export function orderForLint(paths: string[]): string[] {
  const unique = [...new Set(paths)];
  const migrations = unique
    .map((p) => ({ p, m: parseMigrationFileName(p) }))
    .filter((x) => x.m !== undefined)
    .sort(
      (a, b) =>
        a.m!.version - b.m!.version ||
        (a.m!.direction === b.m!.direction ? 0 : a.m!.direction === 'up' ? -1 : 1) ||
        a.p.localeCompare(b.p),
    )
    .map((x) => x.p);
  return [...migrations, ...unique.filter((p) => !parseMigrationFileName(p))];
}
