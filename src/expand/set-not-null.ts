/**
 * NOT NULL without a long lock: a `CHECK (col IS NOT NULL) NOT VALID` constraint (a moment's
 * lock), VALIDATE (scans without blocking writes), then SET NOT NULL, which PostgreSQL 12+ proves
 * from the valid check instead of scanning under ACCESS EXCLUSIVE, and the check goes.
 */
import type pg from 'pg';
import { UserError } from '../errors';
import {
  assertTable,
  checkIdent,
  columnInfo,
  ddl,
  keyColumns,
  label,
  qi,
  qt,
  sampleKeys,
  tableRef,
  type ExpandOptions,
} from './common';

export interface SetNotNullSpec {
  table: string;
  column: string;
}

const checkName = (column: string) => `${column}_not_null_cutover`.slice(0, 63);

/** Read-only pre-flight: the column exists and no row holds NULL (the first keys are named). */
export async function validateSetNotNull(
  client: pg.ClientBase,
  spec: SetNotNullSpec,
): Promise<void> {
  const t = tableRef(spec.table);
  checkIdent('column', spec.column);
  await assertTable(client, t);
  if (!(await columnInfo(client, t, spec.column)))
    throw new UserError(`${label(t)} has no column ${spec.column}`);
  const keys = await sampleKeys(
    client,
    t,
    await keyColumns(client, t),
    `${qi(spec.column)} IS NULL`,
  );
  if (keys.length)
    throw new UserError(
      `${label(t)}.${spec.column} is NULL in rows with key ${keys.join(', ')}${keys.length === 5 ? ', …' : ''}: fill them first (a backfillColumn step) before SET NOT NULL`,
    );
}

export async function runSetNotNull(
  client: pg.ClientBase,
  spec: SetNotNullSpec,
  opts: ExpandOptions = {},
): Promise<void> {
  const t = tableRef(spec.table);
  if ((await columnInfo(client, t, spec.column))?.notNull) return;
  const check = qi(checkName(spec.column));
  const exists = await client.query(
    `SELECT 1 FROM pg_constraint WHERE conrelid = to_regclass($1) AND conname = $2`,
    [qt(t), checkName(spec.column)],
  );
  if (!exists.rows.length)
    await ddl(
      client,
      t,
      `ALTER TABLE ${qt(t)} ADD CONSTRAINT ${check} CHECK (${qi(spec.column)} IS NOT NULL) NOT VALID`,
      opts,
    );
  await ddl(client, t, `ALTER TABLE ${qt(t)} VALIDATE CONSTRAINT ${check}`, opts);
  await ddl(client, t, `ALTER TABLE ${qt(t)} ALTER COLUMN ${qi(spec.column)} SET NOT NULL`, opts);
  await ddl(client, t, `ALTER TABLE ${qt(t)} DROP CONSTRAINT IF EXISTS ${check}`, opts);
}

export async function undoSetNotNull(
  client: pg.ClientBase,
  spec: SetNotNullSpec,
  opts: ExpandOptions = {},
): Promise<void> {
  const t = tableRef(spec.table);
  await ddl(
    client,
    t,
    `ALTER TABLE ${qt(t)} DROP CONSTRAINT IF EXISTS ${qi(checkName(spec.column))}`,
    opts,
  );
  await ddl(client, t, `ALTER TABLE ${qt(t)} ALTER COLUMN ${qi(spec.column)} DROP NOT NULL`, opts);
}
