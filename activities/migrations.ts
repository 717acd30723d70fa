/**
 * Versioned migrations as activities for the deploy workflow: the same runner the CLI uses
 * (advisory lock, lock_timeout with retry, safety lint first), reached by a named connection
 * and a migrations directory on the worker, so no credential enters the workflow's history.
 * Errors are mapped by the activity kit (activities/registry.ts): a UserError (lint findings, bad
 * files, changed history) will not get better by retrying and fails at once.
 */
import { connectionUrl, openClient } from '../src/db/connect';
import { isSafeIdent, parseQualifiedName, quoteIdent, quoteQualified } from '../src/db/ident';
import { UserError } from '../src/errors';
import { migrate, rollback, status, type StepResult } from '../src/migrate';
import { storageFromEnv } from '../src/storage/config';
import { readManifest, restoreBackup, RestoreLockTimeoutError } from '../src/backup/backup';

export interface MigrationsInput {
  connection: string;
  /** Migrations directory on the worker. */
  dir: string;
  to?: number;
  allowUnsafe?: boolean;
}

/** The current version; the undo of an apply rolls back to it. */
export async function migrationsCurrentVersion(input: MigrationsInput): Promise<number> {
  return (await status(connectionUrl(input.connection), { dir: input.dir })).current;
}

/** Lint, then apply everything pending in one rolled-back transaction: what would run, and how long it took. */
export async function migrationsDryRun(input: MigrationsInput): Promise<StepResult[]> {
  return migrate(connectionUrl(input.connection), {
    dir: input.dir,
    to: input.to,
    dryRun: true,
    allowUnsafe: input.allowUnsafe,
  });
}

export async function migrationsApply(input: MigrationsInput): Promise<StepResult[]> {
  return migrate(connectionUrl(input.connection), {
    dir: input.dir,
    to: input.to,
    allowUnsafe: input.allowUnsafe,
  });
}

/** Undo of migrationsApply: the down scripts of everything above `to`, newest first. Idempotent. */
export async function migrationsRollback(
  input: MigrationsInput & { to: number },
): Promise<StepResult[]> {
  return rollback(connectionUrl(input.connection), { dir: input.dir, to: input.to });
}

export interface MigrationsRestoreInput {
  connection: string;
  /** The backup this deploy took before it changed anything. */
  backupId: string;
  /**
   * Copy the tables as they are now into this schema before restoring, so nothing written since
   * the backup is lost for good: a human can compare and carry rows over.
   */
  sideSchema?: string;
  /** lock_timeout for the restore's statements (default 3 s); a timeout is retried. */
  lockTimeoutMs?: number;
}

export interface MigrationsRestoreResult {
  backupId: string;
  tables: string[];
  /** Where the pre-restore copies are, when a side schema was asked for. */
  keptIn?: string;
}

/**
 * The way back when a down script is missing or fails: put the backed-up tables back as they
 * were when the deploy started. Idempotent: a side copy that exists is kept (it holds the state
 * before the first attempt), and restoring the same dump twice gives the same tables.
 */
export async function migrationsRestore(
  input: MigrationsRestoreInput,
): Promise<MigrationsRestoreResult> {
  const url = connectionUrl(input.connection);
  const lockTimeoutMs = input.lockTimeoutMs ?? 3000;
  const manifest = await readManifest(storageFromEnv(process.env), input.backupId);
  if (input.sideSchema)
    await keepCurrentCopies(url, manifest.tables, input.sideSchema, lockTimeoutMs);
  try {
    const r = await restoreBackup(input.backupId, { targetUrl: url, force: true, lockTimeoutMs });
    return { backupId: r.id, tables: r.tables, keptIn: input.sideSchema };
  } catch (err) {
    // A lock timeout changed nothing: let Temporal retry it with backoff.
    if (err instanceof RestoreLockTimeoutError) throw new Error(err.message);
    throw err;
  }
}

async function keepCurrentCopies(
  url: string,
  tables: string[],
  sideSchema: string,
  lockTimeoutMs: number,
): Promise<void> {
  if (!isSafeIdent(sideSchema))
    throw new UserError(
      `side schema ${JSON.stringify(sideSchema.slice(0, 63))} is not a plain identifier: use lower-case letters, digits and _`,
    );
  const client = await openClient(url, 'cutover restore');
  try {
    await client.query(`SET lock_timeout = ${Math.round(lockTimeoutMs)}`);
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(sideSchema)}`);
    for (const qualified of tables) {
      const { schema, name: table } = parseQualifiedName(qualified);
      const copy = schema === 'public' ? table : `${schema}__${table}`;
      const exists = await client.query(`SELECT to_regclass($1) IS NOT NULL AS e`, [
        quoteQualified(schema, table),
      ]);
      if (!exists.rows[0].e) continue;
      // IF NOT EXISTS: a retried attempt must not overwrite the copy of the state before it.
      await client.query(
        `CREATE TABLE IF NOT EXISTS ${quoteQualified(sideSchema, copy)} AS TABLE ${quoteQualified(schema, table)}`,
      );
    }
  } finally {
    await client.end();
  }
}
