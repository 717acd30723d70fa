import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { UsageError } from '../errors';
import { FILE_PATTERN, pad } from './files';

/** Creates NNNN_name.up.sql and NNNN_name.down.sql with the next free number. */
export function createMigrationFiles(dir: string, rawName: string): { up: string; down: string } {
  const name = rawName
    .trim()
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '_')
    .replace(/^_+|_+$/g, '');
  if (!name)
    throw new UsageError(
      `"${rawName}" is not a usable migration name (use letters, digits and underscores)`,
    );
  if (!existsSync(dir)) mkdirSync(dir, { recursive: true });
  const versions = readdirSync(dir)
    .map((f) => FILE_PATTERN.exec(f))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => Number(m[1]));
  const next = pad((versions.length ? Math.max(...versions) : 0) + 1);
  const up = join(dir, `${next}_${name}.up.sql`);
  const down = join(dir, `${next}_${name}.down.sql`);
  writeFileSync(
    up,
    `-- ${next}_${name}: what this migration changes and why.\n` +
      `-- Runs in one transaction. For CREATE INDEX CONCURRENTLY and other statements that refuse a\n` +
      `-- transaction, put "-- cutover:no-transaction" on the first line.\n\n`,
    { flag: 'wx' },
  );
  writeFileSync(
    down,
    `-- Reverts ${next}_${name}. Must leave the schema exactly as before the up script.\n\n`,
    {
      flag: 'wx',
    },
  );
  return { up, down };
}
