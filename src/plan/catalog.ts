/**
 * Catalog reads shared by the plan check, the shadow table and verification. Names are passed
 * as bind parameters; nothing here writes.
 */
import type { ClientBase } from 'pg';
import type { TableRef } from './types';

export interface ColumnInfo {
  name: string;
  /** format_type(): e.g. `bigint`, `numeric(10,2)`, `character varying(80)`. */
  type: string;
  notNull: boolean;
  hasDefault: boolean;
  /** '' (none), 'a' (GENERATED ALWAYS AS IDENTITY) or 'd' (BY DEFAULT). */
  identity: string;
  /** True for GENERATED ALWAYS AS (expr) STORED columns: never written directly. */
  generated: boolean;
}

export interface UniqueIndexInfo {
  name: string;
  primary: boolean;
  valid: boolean;
  partial: boolean;
  /** Key columns in index order; null entries stand for expressions. */
  columns: Array<string | null>;
}

/** OID of an ordinary or partitioned table, or null when there is none. */
export async function tableOid(client: ClientBase, ref: TableRef): Promise<number | null> {
  const { rows } = await client.query<{ oid: number }>(
    `SELECT c.oid::int AS oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')`,
    [ref.schema, ref.table],
  );
  return rows[0]?.oid ?? null;
}

/** True when any relation (table, view, sequence, index…) already has this name. */
export async function relationExists(client: ClientBase, ref: TableRef): Promise<boolean> {
  const { rowCount } = await client.query(
    `SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND c.relname = $2`,
    [ref.schema, ref.table],
  );
  return (rowCount ?? 0) > 0;
}

export async function tableColumns(client: ClientBase, oid: number): Promise<ColumnInfo[]> {
  const { rows } = await client.query<ColumnInfo>(
    `SELECT attname::text AS name, format_type(atttypid, atttypmod) AS type,
            attnotnull AS "notNull", atthasdef AS "hasDefault",
            attidentity::text AS identity, attgenerated <> '' AS generated
       FROM pg_attribute
      WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped
      ORDER BY attnum`,
    [oid],
  );
  return rows;
}

export async function uniqueIndexes(client: ClientBase, oid: number): Promise<UniqueIndexInfo[]> {
  const { rows } = await client.query<UniqueIndexInfo>(
    `SELECT c.relname::text AS name, i.indisprimary AS primary, i.indisvalid AS valid,
            i.indpred IS NOT NULL AS partial,
            array(SELECT a.attname::text
                    FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(attnum, ord)
                    LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                   WHERE k.ord <= i.indnkeyatts
                   ORDER BY k.ord) AS columns
       FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
      WHERE i.indrelid = $1 AND i.indisunique
      ORDER BY i.indisprimary DESC, c.relname`,
    [oid],
  );
  return rows;
}

/** A unique index usable as the change's key: valid, not partial, plain columns equal to `key`. */
export function findKeyIndex(
  indexes: UniqueIndexInfo[],
  key: string[],
): UniqueIndexInfo | undefined {
  const want = [...key].sort().join('\u0000');
  return indexes.find(
    (ix) =>
      ix.valid &&
      !ix.partial &&
      ix.columns.every((c) => c !== null) &&
      [...(ix.columns as string[])].sort().join('\u0000') === want,
  );
}

/**
 * A secondary index or constraint the shadow table gets only after the backfill, with the
 * definition PostgreSQL itself printed for it (pg_get_indexdef / pg_get_constraintdef), so what
 * is built later is exactly what the plan's DDL asked for.
 */
export type DeferredObject =
  /** Plain or unique index not backing a constraint: CREATE INDEX CONCURRENTLY. */
  | { kind: 'index'; name: string; definition: string }
  /** UNIQUE constraint: unique index CONCURRENTLY, then ADD CONSTRAINT … UNIQUE USING INDEX. */
  | { kind: 'unique'; name: string; definition: string }
  /** CHECK / FOREIGN KEY: ADD … NOT VALID, then VALIDATE (unless the DDL declared it NOT VALID). */
  | { kind: 'check' | 'foreign'; name: string; definition: string; validate: boolean }
  /** EXCLUDE constraint: added as is (it cannot be NOT VALID). */
  | { kind: 'exclusion'; name: string; definition: string };

/**
 * Everything on the table except its primary key, the unique index/constraint on `key` (the
 * backfill's ON CONFLICT needs it) and NOT NULL, read from the catalog.
 */
export async function deferrableObjects(
  client: ClientBase,
  oid: number,
  key: string[],
): Promise<DeferredObject[]> {
  const keyIndex = findKeyIndex(await uniqueIndexes(client, oid), key);
  const { rows: cons } = await client.query<{
    name: string;
    type: string;
    definition: string;
    index: string | null;
  }>(
    `SELECT conname::text AS name, contype::text AS type,
            pg_get_constraintdef(oid) AS definition,
            CASE WHEN conindid <> 0 THEN pg_get_indexdef(conindid) END AS index,
            (SELECT relname::text FROM pg_class WHERE oid = conindid) AS index_name
       FROM pg_constraint WHERE conrelid = $1 ORDER BY contype, conname`,
    [oid],
  );
  const out: DeferredObject[] = [];
  for (const c of cons as Array<(typeof cons)[number] & { index_name: string | null }>) {
    if (c.type === 'p') continue;
    if (c.type === 'u') {
      if (keyIndex && c.index_name === keyIndex.name) continue;
      out.push({ kind: 'unique', name: c.name, definition: c.index! });
    } else if (c.type === 'c' || c.type === 'f') {
      const notValid = /\bNOT VALID$/.test(c.definition);
      out.push({
        kind: c.type === 'c' ? 'check' : 'foreign',
        name: c.name,
        definition: c.definition.replace(/\s*NOT VALID$/, ''),
        validate: !notValid,
      });
    } else if (c.type === 'x') {
      out.push({ kind: 'exclusion', name: c.name, definition: c.definition });
    }
    // 'n' (NOT NULL, PostgreSQL 18+) and 't' (constraint triggers) stay with the table.
  }
  const { rows: idx } = await client.query<{ name: string; definition: string }>(
    `SELECT c.relname::text AS name, pg_get_indexdef(i.indexrelid) AS definition
       FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
      WHERE i.indrelid = $1
        AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conrelid = i.indrelid AND k.conindid = i.indexrelid)
      ORDER BY c.relname`,
    [oid],
  );
  for (const ix of idx) {
    if (keyIndex && ix.name === keyIndex.name) continue;
    out.push({ kind: 'index', name: ix.name, definition: ix.definition });
  }
  return out;
}

/**
 * A text snapshot of every user-visible catalog object (relations, columns, constraints, indexes,
 * triggers, functions, comments, sequences' state): two equal snapshots mean nothing was changed.
 */
export async function catalogSnapshot(client: ClientBase): Promise<string> {
  const { rows } = await client.query<{ line: string }>(
    `WITH user_ns AS (
       SELECT oid, nspname FROM pg_namespace
        WHERE nspname NOT IN ('pg_catalog', 'information_schema') AND nspname NOT LIKE 'pg_toast%'
          AND nspname NOT LIKE 'pg_temp%')
     SELECT line FROM (
       SELECT 'ns ' || nspname AS line FROM user_ns
       UNION ALL
       SELECT format('rel %s.%s %s %s', n.nspname, c.relname, c.relkind, obj_description(c.oid, 'pg_class'))
         FROM pg_class c JOIN user_ns n ON n.oid = c.relnamespace
       UNION ALL
       SELECT format('col %s.%s.%s %s %s %s', n.nspname, c.relname, a.attname,
                     format_type(a.atttypid, a.atttypmod), a.attnotnull, pg_get_expr(d.adbin, d.adrelid))
         FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN user_ns n ON n.oid = c.relnamespace
         LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE a.attnum > 0 AND NOT a.attisdropped
       UNION ALL
       SELECT format('con %s.%s %s %s', n.nspname, k.conname, k.convalidated, pg_get_constraintdef(k.oid))
         FROM pg_constraint k JOIN user_ns n ON n.oid = k.connamespace
       UNION ALL
       SELECT format('idx %s %s', pg_get_indexdef(i.indexrelid), i.indisvalid)
         FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN user_ns n ON n.oid = c.relnamespace
       UNION ALL
       SELECT format('trg %s %s', t.tgname, pg_get_triggerdef(t.oid))
         FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN user_ns n ON n.oid = c.relnamespace
        WHERE NOT t.tgisinternal
       UNION ALL
       SELECT format('fn %s.%s(%s) %s', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid), md5(p.prosrc))
         FROM pg_proc p JOIN user_ns n ON n.oid = p.pronamespace
       UNION ALL
       SELECT format('seq %s.%s %s', schemaname, sequencename, last_value) FROM pg_sequences
     ) s ORDER BY line`,
  );
  return rows.map((r) => r.line).join('\n');
}

/** The table's own comment (obj_description), or null. */
export async function tableComment(client: ClientBase, oid: number): Promise<string | null> {
  const { rows } = await client.query<{ c: string | null }>(
    `SELECT obj_description($1::oid, 'pg_class') AS c`,
    [oid],
  );
  return rows[0]?.c ?? null;
}
