import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../errors';
import { migrationFileKind, readInputFile } from '../input/files';
import { escapeNonPrintable } from '../safe-text';
import { legacyChecksums, scriptChecksum } from './checksum';

/**
 * On-disk format: every migration is a pair of files in the migrations directory,
 *   NNNN_snake_case_name.up.sql     applied by `cutover migrate`
 *   NNNN_snake_case_name.down.sql   applied by `cutover rollback`
 * Two files rather than one file with sections, so each script is plain SQL any editor and
 * linter understands. A first-lines comment `-- cutover:no-transaction` runs the script's
 * statements one by one outside a transaction (CREATE INDEX CONCURRENTLY and friends).
 */
export const FILE_PATTERN = /^(\d{4,})_([a-z0-9_]+)\.(up|down)\.sql$/;
const NO_TRANSACTION_LINE = /^\s*--\s*cutover:no-transaction\b/m;
const HEADER_LINES = 5;

/**
 * The runner's rule, and the lint's (src/lint/directives.ts re-exports it, so the two cannot
 * disagree): the directive counts only as a `--` comment on one of the first 5 lines. A
 * directive further down would be easy to miss when reviewing.
 */
export function sqlHasNoTransactionDirective(sql: string): boolean {
  return NO_TRANSACTION_LINE.test(sql.split('\n').slice(0, HEADER_LINES).join('\n'));
}
/**
 * Names that look meant as migrations though FILE_PATTERN refuses them (`0002_x.up.SQL`,
 * `0002_x.up`, `2-x.sql`): reported rather than silently skipped, since a skipped migration is
 * a schema change that never happens.
 */
const LOOKS_LIKE_MIGRATION = /\.sql$|^\d+[_-].*\.(up|down)$/i;

export interface MigrationScript {
  path: string;
  /** The text sent to PostgreSQL: BOM removed. */
  sql: string;
  /** Runs statement by statement outside a transaction. */
  noTransaction: boolean;
}

export interface MigrationFile {
  version: number;
  name: string;
  /** e.g. 0003_create_user_preferences */
  id: string;
  /**
   * sha256 (hex) of the normalized up script (see checksum.ts): the guard behind "never modify
   * applied migrations".
   */
  checksum: string;
  /** Checksums an older cutover stored for this same script (raw text), still accepted. */
  legacyChecksums: string[];
  up: MigrationScript;
  down?: MigrationScript;
}

function readScript(path: string): MigrationScript & { raw: string } {
  const { raw, text: sql } = readInputFile(path, migrationFileKind);
  return { path, sql, raw, noTransaction: sqlHasNoTransactionDirective(sql) };
}

/**
 * Reads and checks the migrations directory. Malformed names, duplicate or gapped numbering
 * and down scripts without an up script are refused here, before anything touches a database.
 */
export function loadMigrations(dir: string): MigrationFile[] {
  if (!existsSync(dir)) throw new UserError(`migrations directory ${dir} does not exist`);
  const byVersion = new Map<number, { name: string; up?: string; down?: string }>();
  const problems: string[] = [];
  for (const file of readdirSync(dir).sort()) {
    if (!LOOKS_LIKE_MIGRATION.test(file)) continue;
    const m = FILE_PATTERN.exec(file);
    if (!m) {
      problems.push(
        `${escapeNonPrintable(file)}: malformed migration file name (expected NNNN_snake_case_name.up.sql or .down.sql, all lower case, e.g. 0007_add_orders.up.sql): rename it`,
      );
      continue;
    }
    const version = Number(m[1]);
    const name = m[2]!;
    const kind = m[3] as 'up' | 'down';
    const entry = byVersion.get(version) ?? { name };
    if (entry.name !== name) {
      problems.push(
        `${file}: version ${m[1]} is also used by "${entry.name}": duplicate migration number`,
      );
      continue;
    }
    if (entry[kind]) problems.push(`${file}: duplicate ${kind} script for version ${version}`);
    entry[kind] = join(dir, file);
    byVersion.set(version, entry);
  }
  const versions = [...byVersion.keys()].sort((a, b) => a - b);
  for (const [i, v] of versions.entries()) {
    const e = byVersion.get(v)!;
    if (!e.up) problems.push(`${pad(v)}_${e.name}.down.sql has no matching .up.sql`);
    const prev = versions[i - 1];
    if (prev !== undefined && v !== prev + 1) {
      problems.push(
        `numbering gap: ${pad(prev)} is followed by ${pad(v)} (renumber so versions are consecutive)`,
      );
    }
  }
  if (problems.length)
    throw new UserError(`invalid migrations in ${dir}:\n  ${problems.join('\n  ')}`);
  return versions.map((version) => {
    const e = byVersion.get(version)!;
    const { raw, ...up } = readScript(e.up!);
    const down = e.down ? readScript(e.down) : undefined;
    return {
      version,
      name: e.name,
      id: `${pad(version)}_${e.name}`,
      checksum: scriptChecksum(raw),
      legacyChecksums: legacyChecksums(raw),
      up,
      down: down && { path: down.path, sql: down.sql, noTransaction: down.noTransaction },
    };
  });
}

export function pad(version: number): string {
  return String(version).padStart(4, '0');
}
