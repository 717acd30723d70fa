/**
 * Expand: add a column that old code can ignore — nullable, or with a constant default (a
 * catalog-only change since PostgreSQL 11). A volatile default would rewrite the whole table
 * under an ACCESS EXCLUSIVE lock, so it is refused: add the column, then backfill it in batches.
 */
import type pg from 'pg';
import { UserError } from '../errors';
import {
  assertTable,
  checkIdent,
  columnInfo,
  ddl,
  label,
  qi,
  qt,
  tableRef,
  type ExpandOptions,
} from './common';

export interface AddColumnSpec {
  table: string;
  column: string;
  /** SQL type, e.g. text, bigint, varchar(500). */
  type: string;
  /** SQL expression that must not be volatile, e.g. 'pending' or 0 or now(). */
  default?: string;
}

/** Read-only: the table exists, the type parses, the default is not volatile. */
export async function validateAddColumn(client: pg.ClientBase, spec: AddColumnSpec): Promise<void> {
  const t = tableRef(spec.table);
  checkIdent('column', spec.column);
  await assertTable(client, t);
  try {
    await client.query(`SELECT NULL::${spec.type}`);
  } catch (err) {
    throw new UserError(
      `type ${JSON.stringify(spec.type.slice(0, 60))} of ${spec.column}: ${(err as Error).message}`,
    );
  }
  const existing = await columnInfo(client, t, spec.column);
  if (existing) {
    const wanted = (await client.query(`SELECT format_type($1::regtype, NULL) AS t`, [spec.type]))
      .rows[0].t;
    if (existing.type.split('(')[0] !== String(wanted).split('(')[0])
      throw new UserError(`${label(t)}.${spec.column} exists already with type ${existing.type}`);
  }
  if (spec.default !== undefined) {
    let volatile: boolean;
    try {
      volatile = await isVolatile(client, spec.default, spec.type);
    } catch (err) {
      throw new UserError(`default of ${spec.column}: ${(err as Error).message}`);
    }
    if (volatile)
      throw new UserError(
        `default of ${label(t)}.${spec.column} (${spec.default.slice(0, 60)}) is volatile: it would rewrite every row under an exclusive lock; add the column without it, then fill it with a backfillColumn step`,
      );
  }
}

/**
 * PostgreSQL's own answer: ADD COLUMN with a non-volatile default stores it once in the catalog
 * (atthasmissing) instead of rewriting the rows. A throwaway one-row temp table, rolled back,
 * shows which of the two the expression gets.
 */
async function isVolatile(client: pg.ClientBase, expr: string, type: string): Promise<boolean> {
  // Inside the plan check's transaction a BEGIN would be ignored and the ROLLBACK would end that
  // transaction: use a savepoint there, a transaction of its own elsewhere.
  let nested = true;
  try {
    await client.query('SAVEPOINT cutover_volatility');
  } catch (err) {
    if ((err as { code?: string }).code !== '25P01') throw err;
    nested = false;
    await client.query('BEGIN');
  }
  try {
    await client.query(`CREATE TEMP TABLE cutover_volatility_probe (x int) ON COMMIT DROP`);
    await client.query(`INSERT INTO cutover_volatility_probe VALUES (1)`);
    await client.query(
      `ALTER TABLE cutover_volatility_probe ADD COLUMN c ${type} DEFAULT (${expr})`,
    );
    const r = await client.query<{ m: boolean }>(
      `SELECT atthasmissing AS m FROM pg_attribute
        WHERE attrelid = 'cutover_volatility_probe'::regclass AND attname = 'c'`,
    );
    return !r.rows[0]?.m;
  } finally {
    await client.query(nested ? 'ROLLBACK TO SAVEPOINT cutover_volatility' : 'ROLLBACK');
  }
}

export async function runAddColumn(
  client: pg.ClientBase,
  spec: AddColumnSpec,
  opts: ExpandOptions = {},
): Promise<void> {
  const t = tableRef(spec.table);
  const def = spec.default !== undefined ? ` DEFAULT (${spec.default})` : '';
  await ddl(
    client,
    t,
    `ALTER TABLE ${qt(t)} ADD COLUMN IF NOT EXISTS ${qi(spec.column)} ${spec.type}${def}`,
    opts,
  );
}

/** Undo: the column goes again (it was added by this run; IF EXISTS makes a second undo harmless). */
export async function undoAddColumn(
  client: pg.ClientBase,
  spec: AddColumnSpec,
  opts: ExpandOptions = {},
): Promise<void> {
  const t = tableRef(spec.table);
  await ddl(client, t, `ALTER TABLE ${qt(t)} DROP COLUMN IF EXISTS ${qi(spec.column)}`, opts);
}
