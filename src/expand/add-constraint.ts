/**
 * A CHECK or FOREIGN KEY without a long lock: added NOT VALID (a moment's lock, new rows are
 * checked from then on), then VALIDATE, which scans under a lock that lets writes through. Rows
 * that would fail are found first and named, before anything changes.
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

export type AddConstraintSpec = {
  table: string;
  name: string;
} & (
  | { check: string }
  | {
      foreignKey: {
        columns: string[];
        references: string;
        referencedColumns: string[];
        onDelete?: 'cascade' | 'restrict' | 'set null' | 'no action';
      };
    }
);

function definition(spec: AddConstraintSpec): string {
  if ('check' in spec) return `CHECK (${spec.check})`;
  const fk = spec.foreignKey;
  const ref = tableRef(fk.references);
  return `FOREIGN KEY (${fk.columns.map(qi).join(', ')}) REFERENCES ${qt(ref)} (${fk.referencedColumns.map(qi).join(', ')})${fk.onDelete ? ` ON DELETE ${fk.onDelete.toUpperCase()}` : ''}`;
}

/** SQL over the table that is true for rows the constraint would reject. */
function violation(spec: AddConstraintSpec): string {
  if ('check' in spec) return `NOT coalesce((${spec.check}), true)`;
  const fk = spec.foreignKey;
  const ref = tableRef(fk.references);
  // Outer columns by their table's full name: the referenced table may have the same names.
  const own = (c: string) => `${qt(tableRef(spec.table))}.${qi(c)}`;
  const match = fk.columns
    .map((c, i) => `r.${qi(fk.referencedColumns[i]!)} = ${own(c)}`)
    .join(' AND ');
  return `${fk.columns.map((c) => `${own(c)} IS NOT NULL`).join(' AND ')} AND NOT EXISTS (SELECT 1 FROM ${qt(ref)} r WHERE ${match})`;
}

export async function validateAddConstraint(
  client: pg.ClientBase,
  spec: AddConstraintSpec,
): Promise<void> {
  const t = tableRef(spec.table);
  checkIdent('constraint', spec.name);
  await assertTable(client, t);
  if ('foreignKey' in spec) {
    const fk = spec.foreignKey;
    await assertTable(client, tableRef(fk.references));
    if (!fk.columns.length || fk.columns.length !== fk.referencedColumns.length)
      throw new UserError(`foreign key ${spec.name}: columns and referencedColumns must pair up`);
    for (const c of fk.columns) {
      checkIdent('column', c);
      if (!(await columnInfo(client, t, c))) throw new UserError(`${label(t)} has no column ${c}`);
    }
    for (const c of fk.referencedColumns) checkIdent('column', c);
  }
  try {
    await client.query(`EXPLAIN SELECT 1 FROM ${qt(t)} WHERE ${violation(spec)}`);
  } catch (err) {
    throw new UserError(`constraint ${spec.name}: ${(err as Error).message}`);
  }
  const existing = await client.query(
    `SELECT convalidated FROM pg_constraint WHERE conrelid = to_regclass($1) AND conname = $2`,
    [qt(t), spec.name],
  );
  if (existing.rows[0]?.convalidated) return;
  const keys = await sampleKeys(client, t, await keyColumns(client, t), violation(spec));
  if (keys.length)
    throw new UserError(
      `${label(t)} has rows that ${spec.name} would reject, with key ${keys.join(', ')}${keys.length === 5 ? ', …' : ''}: fix them first`,
    );
}

export async function runAddConstraint(
  client: pg.ClientBase,
  spec: AddConstraintSpec,
  opts: ExpandOptions = {},
): Promise<void> {
  const t = tableRef(spec.table);
  const existing = await client.query(
    `SELECT convalidated FROM pg_constraint WHERE conrelid = to_regclass($1) AND conname = $2`,
    [qt(t), spec.name],
  );
  if (!existing.rows.length)
    await ddl(
      client,
      t,
      `ALTER TABLE ${qt(t)} ADD CONSTRAINT ${qi(spec.name)} ${definition(spec)} NOT VALID`,
      opts,
    );
  if (!existing.rows[0]?.convalidated)
    await ddl(client, t, `ALTER TABLE ${qt(t)} VALIDATE CONSTRAINT ${qi(spec.name)}`, opts);
}

export async function undoAddConstraint(
  client: pg.ClientBase,
  spec: AddConstraintSpec,
  opts: ExpandOptions = {},
): Promise<void> {
  const t = tableRef(spec.table);
  await ddl(client, t, `ALTER TABLE ${qt(t)} DROP CONSTRAINT IF EXISTS ${qi(spec.name)}`, opts);
}
