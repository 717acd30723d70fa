import type { ClientBase } from 'pg';

/** Flyway-style history: one row per applied migration, in the `cutover` schema. */
export const HISTORY_TABLE = 'cutover.schema_migrations';

export interface AppliedMigration {
  version: number;
  name: string;
  checksum: string;
  appliedAt: Date;
  executionMs: number;
  appliedBy: string;
}

export async function ensureHistoryTable(client: ClientBase): Promise<void> {
  // IF NOT EXISTS makes concurrent first runs safe only under the runner's advisory lock,
  // which every caller holds.
  await client.query(`CREATE SCHEMA IF NOT EXISTS cutover`);
  await client.query(`
    CREATE TABLE IF NOT EXISTS ${HISTORY_TABLE} (
      version      integer PRIMARY KEY,
      name         text NOT NULL,
      checksum     text NOT NULL,
      applied_at   timestamptz NOT NULL DEFAULT now(),
      execution_ms integer NOT NULL,
      applied_by   text NOT NULL
    )`);
}

export async function historyExists(client: ClientBase): Promise<boolean> {
  const r = await client.query(`SELECT to_regclass($1) IS NOT NULL AS present`, [HISTORY_TABLE]);
  return r.rows[0].present as boolean;
}

export async function readHistory(client: ClientBase): Promise<AppliedMigration[]> {
  if (!(await historyExists(client))) return [];
  const r = await client.query(
    `SELECT version, name, checksum, applied_at, execution_ms, applied_by FROM ${HISTORY_TABLE} ORDER BY version`,
  );
  return r.rows.map((row) => ({
    version: row.version as number,
    name: row.name as string,
    checksum: row.checksum as string,
    appliedAt: row.applied_at as Date,
    executionMs: row.execution_ms as number,
    appliedBy: row.applied_by as string,
  }));
}

export async function recordApplied(
  client: ClientBase,
  m: { version: number; name: string; checksum: string },
  executionMs: number,
  appliedBy: string,
): Promise<void> {
  await client.query(
    `INSERT INTO ${HISTORY_TABLE} (version, name, checksum, execution_ms, applied_by) VALUES ($1, $2, $3, $4, $5)`,
    [m.version, m.name, m.checksum, Math.round(executionMs), appliedBy],
  );
}

export async function recordRolledBack(client: ClientBase, version: number): Promise<void> {
  await client.query(`DELETE FROM ${HISTORY_TABLE} WHERE version = $1`, [version]);
}

/** Rewrites a row written with a pre-normalization checksum (see checksum.ts) to the new one. */
export async function upgradeChecksum(
  client: ClientBase,
  version: number,
  checksum: string,
): Promise<void> {
  await client.query(`UPDATE ${HISTORY_TABLE} SET checksum = $2 WHERE version = $1`, [
    version,
    checksum,
  ]);
}

/**
 * Progress of a no-transaction up script: one row per migration that started, holding the
 * statements that completed. A script that fails half-way leaves its row, so `cutover status`
 * can show it as partially applied with what ran; a successful run deletes it together with
 * writing the history row. A side table rather than history columns: the history stays one row
 * per applied migration, which other tools (and our checksums) rely on.
 */
export const PROGRESS_TABLE = 'cutover.migration_progress';

export interface MigrationProgress {
  version: number;
  name: string;
  statementsTotal: number;
  /** The statements that completed, in order. */
  statementsDone: string[];
  startedAt: Date;
  error?: string;
}

export async function ensureProgressTable(client: ClientBase): Promise<void> {
  await client.query(`
    CREATE TABLE IF NOT EXISTS ${PROGRESS_TABLE} (
      version          integer PRIMARY KEY,
      name             text NOT NULL,
      statements_total integer NOT NULL,
      statements_done  text[] NOT NULL DEFAULT '{}',
      started_at       timestamptz NOT NULL DEFAULT now(),
      error            text
    )`);
}

export async function startProgress(
  client: ClientBase,
  m: { version: number; name: string },
  statementsTotal: number,
): Promise<void> {
  await ensureProgressTable(client);
  // A retry of a script that failed before starts its count afresh: the statements run again.
  await client.query(
    `INSERT INTO ${PROGRESS_TABLE} (version, name, statements_total) VALUES ($1, $2, $3)
     ON CONFLICT (version) DO UPDATE
       SET name = EXCLUDED.name, statements_total = EXCLUDED.statements_total,
           statements_done = '{}', started_at = now(), error = NULL`,
    [m.version, m.name, statementsTotal],
  );
}

export async function recordStatementDone(
  client: ClientBase,
  version: number,
  sql: string,
): Promise<void> {
  await client.query(
    `UPDATE ${PROGRESS_TABLE} SET statements_done = statements_done || $2::text WHERE version = $1`,
    [version, sql],
  );
}

export async function recordProgressError(
  client: ClientBase,
  version: number,
  error: string,
): Promise<void> {
  await client.query(`UPDATE ${PROGRESS_TABLE} SET error = $2 WHERE version = $1`, [
    version,
    error,
  ]);
}

export async function clearProgress(client: ClientBase, version: number): Promise<void> {
  if (
    (await client.query(`SELECT to_regclass($1) IS NOT NULL AS present`, [PROGRESS_TABLE])).rows[0]
      .present
  )
    await client.query(`DELETE FROM ${PROGRESS_TABLE} WHERE version = $1`, [version]);
}

export async function readProgress(client: ClientBase): Promise<MigrationProgress[]> {
  const r = await client.query(`SELECT to_regclass($1) IS NOT NULL AS present`, [PROGRESS_TABLE]);
  if (!r.rows[0].present) return [];
  const rows = await client.query(
    `SELECT version, name, statements_total, statements_done, started_at, error
       FROM ${PROGRESS_TABLE} ORDER BY version`,
  );
  return rows.rows.map((row) => ({
    version: row.version as number,
    name: row.name as string,
    statementsTotal: row.statements_total as number,
    statementsDone: row.statements_done as string[],
    startedAt: row.started_at as Date,
    error: (row.error as string | null) ?? undefined,
  }));
}
