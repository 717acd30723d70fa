/**
 * What every expand/contract operation shares: a table reference checked against the catalog,
 * its key for keyset batches, DDL under lock_timeout with retry that says what it waits for,
 * and pre-flight samples that name the offending rows.
 */
import type pg from 'pg';
import { isSafeIdent, parseQualifiedName, quoteIdent, quoteQualified } from '../db/ident';
import { withLockRetry, type LockRetryOptions } from '../db/lock-timeout';
import { UserError } from '../errors';

export interface TableRef {
  schema: string;
  table: string;
}

export interface ExpandOptions {
  lock?: Partial<LockRetryOptions>;
  /** Told when a DDL statement waits for a lock, with who holds it (pid, age, query). */
  onWait?: (message: string) => void;
}

export function tableRef(qualified: string): TableRef {
  const { schema, name } = parseQualifiedName(qualified);
  for (const part of [schema, name])
    if (!isSafeIdent(part))
      throw new UserError(
        `table ${JSON.stringify(qualified.slice(0, 80))} is not schema.table of plain identifiers`,
      );
  return { schema, table: name };
}

export function checkIdent(what: string, name: string): string {
  if (!isSafeIdent(name))
    throw new UserError(
      `${what} ${JSON.stringify(name.slice(0, 80))} is not a plain identifier (letters, digits, _)`,
    );
  return name;
}

export const qt = (t: TableRef) => quoteQualified(t.schema, t.table);
export const qi = quoteIdent;
export const label = (t: TableRef) => `${t.schema}.${t.table}`;

export async function assertTable(client: pg.ClientBase, t: TableRef): Promise<void> {
  const r = await client.query(
    `SELECT c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND c.relname = $2`,
    [t.schema, t.table],
  );
  if (!r.rows.length) throw new UserError(`table ${label(t)} does not exist`);
  if (!['r', 'p'].includes(r.rows[0].relkind))
    throw new UserError(`${label(t)} is not a table (relkind ${r.rows[0].relkind})`);
}

export interface ColumnInfo {
  type: string;
  notNull: boolean;
}

export async function columnInfo(
  client: pg.ClientBase,
  t: TableRef,
  column: string,
): Promise<ColumnInfo | undefined> {
  const r = await client.query(
    `SELECT format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS "notNull"
       FROM pg_attribute a
      WHERE a.attrelid = to_regclass($1) AND a.attname = $2 AND a.attnum > 0 AND NOT a.attisdropped`,
    [qt(t), column],
  );
  return r.rows[0] as ColumnInfo | undefined;
}

/** The primary key (or first unique, not-null key) columns: what keyset batches walk. */
export async function keyColumns(client: pg.ClientBase, t: TableRef): Promise<string[]> {
  const r = await client.query<{ cols: string[] }>(
    `SELECT array_agg(a.attname ORDER BY k.ord)::text[] AS cols
       FROM pg_index i
       CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
       JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
      WHERE i.indrelid = to_regclass($1) AND i.indisunique AND i.indisvalid AND i.indpred IS NULL
      GROUP BY i.indexrelid, i.indisprimary
     HAVING bool_and(a.attnotnull)
      ORDER BY i.indisprimary DESC, count(*) LIMIT 1`,
    [qt(t)],
  );
  if (!r.rows.length)
    throw new UserError(
      `${label(t)} has no primary key or NOT NULL unique key: batches need one to walk the table by key`,
    );
  return r.rows[0]!.cols;
}

/** Up to `limit` keys of rows matching `where` (SQL over the table), rendered for a message. */
export async function sampleKeys(
  client: pg.ClientBase,
  t: TableRef,
  key: string[],
  where: string,
  params: unknown[] = [],
  limit = 5,
): Promise<string[]> {
  const cols = key.map(qi).join(', ');
  const r = await client.query<{ k: string }>(
    `SELECT (${key.length === 1 ? qi(key[0]!) : `ROW(${cols})`})::text AS k FROM ${qt(t)} WHERE ${where} ORDER BY ${cols} LIMIT ${limit}`,
    params,
  );
  return r.rows.map((row) => row.k);
}

/** Who holds a lock that `relation` needs, for a message while a DDL statement waits. */
export async function blockersOf(client: pg.ClientBase, t: TableRef): Promise<string> {
  const r = await client.query<{ pid: number; age: string; state: string; query: string }>(
    `SELECT a.pid, coalesce(round(extract(epoch FROM now() - a.xact_start))::text || 's', '?') AS age,
            a.state, left(a.query, 120) AS query
       FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
      WHERE l.relation = to_regclass($1) AND l.granted AND a.pid <> pg_backend_pid()
      ORDER BY a.xact_start NULLS LAST LIMIT 3`,
    [qt(t)],
  );
  if (!r.rows.length) return 'no session holds a lock on it now';
  return r.rows
    .map(
      (b) => `pid ${b.pid} (transaction ${b.age} old, ${b.state}): ${b.query.replace(/\s+/g, ' ')}`,
    )
    .join('; ');
}

/**
 * Runs DDL under lock_timeout with jittered retries; each retry says which sessions hold the
 * table, so an operator sees why the step waits instead of a silent stall. The application is
 * never queued behind us for longer than lock_timeout.
 */
export async function ddl(
  client: pg.ClientBase,
  t: TableRef,
  sql: string,
  opts: ExpandOptions = {},
): Promise<void> {
  await withLockRetry(client, () => client.query(sql), {
    ...opts.lock,
    onRetry: (attempt, waitMs) => {
      void blockersOf(client, t).then(
        (who) =>
          opts.onWait?.(
            `waiting for a lock on ${label(t)} (attempt ${attempt}, next in ${waitMs} ms): ${who}`,
          ),
        () => undefined,
      );
    },
  });
}
