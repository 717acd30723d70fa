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
