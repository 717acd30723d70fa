/**
 * CREATE INDEX CONCURRENTLY, which writes go on through. A failed concurrent build leaves an
 * INVALID index behind that still slows every write; it is dropped (concurrently) first. A
 * unique index is checked for duplicates up front, naming the first duplicated keys.
 */
import type pg from 'pg';
import { UserError } from '../errors';
import { defaultLockRetry, isLockTimeout, withLockRetry } from '../db/lock-timeout';
import {
  assertTable,
  blockersOf,
  checkIdent,
  columnInfo,
  ddl,
  label,
  qi,
  qt,
  tableRef,
  type ExpandOptions,
  type TableRef,
} from './common';

export interface CreateIndexSpec {
  table: string;
  name: string;
  columns: string[];
  unique?: boolean;
}

async function indexState(client: pg.ClientBase, t: TableRef, name: string) {
  const r = await client.query<{ valid: boolean; table: string }>(
    `SELECT i.indisvalid AS valid, i.indrelid::regclass::text AS table
       FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND c.relname = $2`,
    [t.schema, name],
  );
  return r.rows[0];
}

export async function validateCreateIndex(
  client: pg.ClientBase,
  spec: CreateIndexSpec,
): Promise<void> {
  const t = tableRef(spec.table);
  checkIdent('index', spec.name);
  await assertTable(client, t);
  if (!spec.columns.length) throw new UserError(`index ${spec.name}: name at least one column`);
  for (const c of spec.columns) {
    checkIdent('column', c);
    if (!(await columnInfo(client, t, c))) throw new UserError(`${label(t)} has no column ${c}`);
  }
  const existing = await indexState(client, t, spec.name);
  const other = await client.query(
    `SELECT c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind <> 'i'`,
    [t.schema, spec.name],
  );
  if (other.rows.length) throw new UserError(`${t.schema}.${spec.name} exists and is not an index`);
  if (
    existing &&
    existing.table !== qt(t) &&
    existing.table !== `${t.schema}.${t.table}` &&
    existing.table !== t.table
  )
    throw new UserError(
      `index ${t.schema}.${spec.name} exists on another table (${existing.table})`,
    );
  if (spec.unique) {
    const cols = spec.columns.map(qi).join(', ');
    const dup = await client.query<{ k: string; cnt: number }>(
      `SELECT ROW(${cols})::text AS k, count(*)::int AS cnt FROM ${qt(t)} WHERE ${spec.columns.map((c) => `${qi(c)} IS NOT NULL`).join(' AND ')}
        GROUP BY ${cols} HAVING count(*) > 1 ORDER BY count(*) DESC, ${cols} LIMIT 5`,
    );
    if (dup.rows.length)
      throw new UserError(
        `${label(t)} has duplicates under the new unique index ${spec.name}: ${dup.rows.map((d) => `${d.k} (${d.cnt} rows)`).join(', ')}; remove them first`,
      );
  }
}

export async function runCreateIndex(
  client: pg.ClientBase,
  spec: CreateIndexSpec,
  opts: ExpandOptions = {},
): Promise<void> {
  const t = tableRef(spec.table);
  const build = `CREATE ${spec.unique ? 'UNIQUE ' : ''}INDEX CONCURRENTLY IF NOT EXISTS ${qi(spec.name)} ON ${qt(t)} (${spec.columns.map(qi).join(', ')})`;
  const lock = { ...defaultLockRetry, ...opts.lock };
  // A concurrent build that times out waiting for older transactions leaves an INVALID index,
  // which IF NOT EXISTS would then take for done: each attempt drops the leftover first, so the
  // retries below (not the one-statement retries of ddl()) are what waits out a long transaction.
  for (let attempt = 1; ; attempt++) {
    const state = await indexState(client, t, spec.name);
    if (state?.valid) return;
    if (state)
      await ddl(
        client,
        t,
        `DROP INDEX CONCURRENTLY IF EXISTS ${qi(t.schema)}.${qi(spec.name)}`,
        opts,
      );
    try {
      await withLockRetry(client, () => client.query(build), { ...lock, attempts: 1 });
    } catch (err) {
      if (!isLockTimeout(err) || attempt >= lock.attempts) throw err;
      const base = Math.min(lock.maxBackoffMs, lock.initialBackoffMs * 2 ** (attempt - 1));
      const wait = Math.round(base / 2 + Math.random() * (base / 2));
      const who = await blockersOf(client, t).catch(() => 'unknown');
      opts.onWait?.(
        `waiting for a lock on ${label(t)} (attempt ${attempt}, next in ${wait} ms): ${who}`,
      );
      await new Promise((r) => setTimeout(r, wait));
      continue;
    }
    const after = await indexState(client, t, spec.name);
    if (after?.valid) return;
    // Not valid without an error: a concurrent session's leftover; dropped and rebuilt next time.
    if (attempt >= lock.attempts)
      throw new UserError(
        `index ${spec.name} was built but is not valid after ${attempt} attempts`,
      );
  }
}

export async function undoCreateIndex(
  client: pg.ClientBase,
  spec: CreateIndexSpec,
  opts: ExpandOptions = {},
): Promise<void> {
  const t = tableRef(spec.table);
  await ddl(client, t, `DROP INDEX CONCURRENTLY IF EXISTS ${qi(t.schema)}.${qi(spec.name)}`, opts);
}
