/**
 * The cut-over: the new table takes the old one's name in ONE transaction, and a swap-back puts
 * the names back the same way.
 *
 * Inside the transaction, under lock_timeout: lock both tables (and the tables whose foreign keys
 * point at the old one), stop the forward sync, rename old → archive and new → original, pass
 * index names, sequence ownership, foreign keys of other tables, views, the application's
 * triggers, grants, policies and comments to the new table, install the reverse sync (new →
 * archive; plpgsql resolves table names when it runs, so every sync function is recreated in
 * this transaction to name the right tables), leave the new table's old name usable as a view,
 * flag the route row as swapped (NOTIFY for routers) and record all of it in cutover.swaps.
 * Either all of it commits or nothing does: a failed attempt leaves the database as it was.
 *
 * The swap-back replays the record in reverse. Most statements are the same text as on the way
 * in: definitions were printed while the old table had the original name, so run after the
 * swap-back's renames they name the old table again.
 *
 * The SQL of the sync triggers comes from the caller (the trigger generator lives with the sync
 * step); this module only decides when it runs. The sync debt (keys a trigger could not copy
 * exactly, src/steps/sync/debt.ts) is settled inside the same transactions, with both tables
 * locked: right after the forward sync stops on the way in, before the renames on the way back.
 */
import type { ClientBase } from 'pg';
import { quoteIdent, quoteQualified } from '../db/ident';
import { isLockTimeout } from '../db/lock-timeout';
import { UserError } from '../errors';
import { ensureRouteTable, ROUTE_CHANNEL, type RouteNotice } from '../router/store';
import type { ResolvedChange, TableRef } from '../plan/types';
import { drainSyncDebt } from '../steps/sync/debt';
import {
  appTriggers,
  dependentViews,
  foreignKeysIn,
  grantStatements,
  inspectDependents,
  policies,
  refusals,
  relOid,
  sequenceUses,
  tableFacts,
  type ViewInfo,
} from './dependents';
import { lockForSwap, SwapLockTimeout, type SwapLockTry } from './locks';
import { archivedIndexName } from './names';

/**
 * The change as it looks after the renames: the archive is the old table, the new table has the
 * original name. The sync after the swap (new → archive) and its debt use these refs.
 */
export function swappedChange(change: ResolvedChange, archive: string): ResolvedChange {
  return {
    ...change,
    source: { schema: change.source.schema, table: archive },
    target: { schema: change.source.schema, table: change.source.table },
  };
}

export interface SwapSpec {
  migration: string;
  /**
   * The change with its refs as before the swap: its sync debt is drained inside the swap
   * transaction right after the forward sync stops, so no key the triggers could not copy is
   * left behind when the names change.
   */
  change: ResolvedChange;
  /** The old table, under the name the application uses. */
  original: TableRef;
  /** The new table, under its temporary name. */
  shadow: TableRef;
  /** The old table's name after the swap (same schema). */
  archive: string;
  lockTimeoutMs: number;
  /** A transaction on the tables older than this is waited out instead of queued behind. */
  blockerAgeMs?: number;
  /** Run after the locks, before the renames: drop the forward sync trigger and function. */
  stopForwardSync: string[];
  /** Run after the renames: (re)create the reverse sync new → archive. Empty: no reverse sync. */
  startReverseSync: string[];
}

export interface SwapBackSpec {
  migration: string;
  original: TableRef;
  shadow: TableRef;
  archive: string;
  lockTimeoutMs: number;
  blockerAgeMs?: number;
  /** Run after the renames back: recreate the sync triggers as they were before the swap. */
  restoreSync: string[];
  /** The change with the refs as after the swap: its debt is drained before the renames back. */
  swapped: ResolvedChange;
}

export interface Blocker {
  pid: number;
  ageSeconds: number;
  state: string;
  /** True when it waits for a lock itself (queued behind someone), false when it holds one. */
  waiting: boolean;
  query: string;
}

export type SwapAttempt =
  | { done: true; already: boolean; record: SwapRecord; lockTries?: SwapLockTry[] }
  | {
      done: false;
      reason: 'blocked' | 'lock-timeout';
      blockers: Blocker[];
      /** The lock tries this attempt made (src/swap/locks.ts), when it got that far. */
      lockTries?: SwapLockTry[];
    };

export interface IndexRename {
  side: 'old' | 'new';
  from: string;
  to: string;
}

/** What a swap did, stored in cutover.swaps so a swap-back (or a cleanup) can undo/finish it. */
export interface SwapRecord {
  migration: string;
  schema: string;
  original: string;
  shadow: string;
  archive: string;
  state: 'swapped' | 'back' | 'finished';
  indexRenames: IndexRename[];
  /** Statements that re-point other tables' foreign keys (same text both ways), and their tables. */
  foreignKeys: Array<{ table: string; name: string; drop: string; add: string; validate: string }>;
  views: ViewStatements[];
  triggers: Array<{ name: string; create: string }>;
  sequences: string[];
  identity: Array<{ column: string; sequence: string; kind: 'a' | 'd' }>;
  shadowComment: string | null;
  reverseSync: boolean;
  /**
   * 'rename' (src/swap/rename.ts): the new table keeps its own name and the old name is a view
   * over it for the rollback window. Absent in records written before renames existed: a swap.
   */
  mode?: 'swap' | 'rename';
  /** Rename only: the route percent before the rename, which the rename-back puts back. */
  percentBefore?: number;
}

const SWAPS_DDL = `
CREATE SCHEMA IF NOT EXISTS cutover;
CREATE TABLE IF NOT EXISTS cutover.swaps (
  migration  text PRIMARY KEY,
  archive    text NOT NULL,
  state      text NOT NULL CHECK (state IN ('swapped', 'back', 'finished')),
  record     jsonb NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE cutover.swaps IS 'cutover swaps: what each cut-over renamed and re-pointed, for swap-back and cleanup';
`;

/** Creates cutover.swaps and the routes table's swapped flag if missing (outside any swap lock). */
export async function ensureSwapTables(client: ClientBase): Promise<void> {
  await ensureRouteTable(client);
  const { rows } = await client.query<{ swaps: boolean; flag: boolean }>(
    `SELECT to_regclass('cutover.swaps') IS NOT NULL AS swaps,
            EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'cutover.routes'::regclass
                      AND attname = 'swapped' AND NOT attisdropped) AS flag`,
  );
  if (rows[0]!.swaps && rows[0]!.flag) return;
  await client.query(`SELECT set_config('lock_timeout', '5s', false)`);
  await client.query('BEGIN');
  try {
    await client.query(SWAPS_DDL);
    await client.query(
      `ALTER TABLE cutover.routes ADD COLUMN IF NOT EXISTS swapped boolean NOT NULL DEFAULT false`,
    );
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    const code = (err as { code?: string }).code;
    // Two workers racing on IF NOT EXISTS: the loser finds the winner's objects next time. The
    // collision may be on the table's row type (42710) rather than the table.
    if (code !== '23505' && code !== '42P07' && code !== '42P06' && code !== '42710') throw err;
  }
}

export async function readSwapRecord(
  client: ClientBase,
  migration: string,
): Promise<SwapRecord | undefined> {
  const { rows } = await client.query<{ ok: boolean }>(
    `SELECT to_regclass('cutover.swaps') IS NOT NULL AS ok`,
  );
  if (!rows[0]!.ok) return undefined;
  const r = await client.query<{ record: SwapRecord; state: SwapRecord['state'] }>(
    `SELECT record, state FROM cutover.swaps WHERE migration = $1`,
    [migration],
  );
  const row = r.rows[0];
  return row ? { ...row.record, state: row.state } : undefined;
}

/** Where the new table lives after a swap or a rename: the original name, or its own. */
export function newTableOf(record: SwapRecord): string {
  return record.mode === 'rename' ? record.shadow : record.original;
}

/** The view that keeps the name the application no longer uses working in the rollback window. */
export function bridgeViewOf(record: SwapRecord): string {
  return record.mode === 'rename' ? record.original : record.shadow;
}

/**
 * The change with the refs as they are after a rename: the archive is the old table, the new
 * table keeps its own name (what the reverse sync and its debt use).
 */
export function renamedChange(change: ResolvedChange, archive: string): ResolvedChange {
  return { ...change, source: { schema: change.source.schema, table: archive } };
}

/**
 * The plan's change under the names of the moment: while a swap (or a rename) of this plan is in
 * force, the old table is the archive and the new one has the original name (or its own), so a
 * step after the swap (verify) compares the right tables instead of the new table with the view
 * left under its temporary name.
 */
export async function changeAsNow(
  client: ClientBase,
  change: ResolvedChange,
): Promise<ResolvedChange> {
  const record = await readSwapRecord(client, change.name);
  if (
    record?.state !== 'swapped' ||
    record.schema !== change.source.schema ||
    record.original !== change.source.table
  )
    return change;
  return record.mode === 'rename'
    ? renamedChange(change, record.archive)
    : swappedChange(change, record.archive);
}

export async function writeSwapRecord(client: ClientBase, record: SwapRecord): Promise<void> {
  await client.query(
    `INSERT INTO cutover.swaps (migration, archive, state, record) VALUES ($1, $2, $3, $4)
     ON CONFLICT (migration) DO UPDATE SET archive = EXCLUDED.archive, state = EXCLUDED.state,
       record = EXCLUDED.record, updated_at = now()`,
    [record.migration, record.archive, record.state, JSON.stringify(record)],
  );
}

/** Marks the route row swapped (or not) and announces it, inside the caller's transaction. */
async function flagRoute(client: ClientBase, migration: string, swapped: boolean): Promise<void> {
  await client.query(
    `INSERT INTO cutover.routes (migration, percent_new, version) VALUES ($1, 0, 0)
     ON CONFLICT (migration) DO NOTHING`,
    [migration],
  );
  const { rows } = await client.query<{ percent_new: number; version: string }>(
    `UPDATE cutover.routes SET swapped = $2, version = version + 1, updated_at = now()
      WHERE migration = $1 RETURNING percent_new, version`,
    [migration, swapped],
  );
  const notice: RouteNotice = {
    migration,
    percent: rows[0]!.percent_new,
    version: Number(rows[0]!.version),
    swapped,
  };
  await client.query('SELECT pg_notify($1, $2)', [ROUTE_CHANNEL, JSON.stringify(notice)]);
}

/**
 * Sessions whose transaction touches one of the tables (holding or waiting for a lock on it) and
 * has been open longer than `olderThanMs`: queueing an ACCESS EXCLUSIVE request behind them would
 * hold up every application query on the table until they finish.
 */
export async function findBlockers(
  client: ClientBase,
  oids: number[],
  olderThanMs: number,
): Promise<Blocker[]> {
  const { rows } = await client.query<Blocker>(
    `SELECT a.pid, round(extract(epoch FROM clock_timestamp() - a.xact_start)::numeric, 1)::float AS "ageSeconds",
            coalesce(a.state, '') AS state,
            EXISTS (SELECT 1 FROM pg_locks w WHERE w.pid = a.pid AND NOT w.granted) AS waiting,
            left(coalesce(a.query, ''), 200) AS query
       FROM pg_stat_activity a
      WHERE a.pid <> pg_backend_pid() AND a.xact_start IS NOT NULL
        -- Autovacuum yields to a lock request by itself; only clients are waited out.
        AND a.backend_type = 'client backend'
        AND a.xact_start < clock_timestamp() - make_interval(secs => $2::float / 1000)
        AND EXISTS (SELECT 1 FROM pg_locks l WHERE l.pid = a.pid AND l.locktype = 'relation'
                      AND l.relation = ANY ($1::oid[]))
      ORDER BY a.xact_start LIMIT 5`,
    [oids, olderThanMs],
  );
  return rows;
}

const qual = (schema: string, name: string) => quoteQualified(schema, name);

/** How to put a view over whatever table its definition's names resolve to now. */
export interface ViewStatements {
  replace: string;
  drop: string;
  /** After a drop: create, owner, grants, comment. */
  create: string[];
}

async function viewStatements(client: ClientBase, v: ViewInfo): Promise<ViewStatements> {
  const name = qual(v.schema, v.name);
  const body = `${v.options?.length ? ` WITH (${v.options.join(', ')})` : ''} AS ${v.definition.replace(/;\s*$/, '')}`;
  return {
    replace: `CREATE OR REPLACE VIEW ${name}${body}`,
    drop: `DROP VIEW ${name}`,
    create: [
      `CREATE VIEW ${name}${body}`,
      `ALTER VIEW ${name} OWNER TO ${quoteIdent(v.owner)}`,
      ...v.grants,
      ...(v.comment !== null ? [await commentSql(client, `VIEW ${name}`, v.comment)] : []),
    ],
  };
}

/**
 * CREATE OR REPLACE keeps the view's identity (grants, dependents) but refuses a changed column
 * type; then the view is dropped and created again (a view depending on it makes the drop fail,
 * and with it the whole swap, which changes nothing).
 */
async function recreateView(client: ClientBase, v: ViewStatements): Promise<void> {
  await client.query('SAVEPOINT cutover_view');
  try {
    await client.query(v.replace);
    await client.query('RELEASE SAVEPOINT cutover_view');
  } catch {
    await client.query('ROLLBACK TO SAVEPOINT cutover_view');
    await client.query(v.drop);
    for (const sql of v.create) await client.query(sql);
  }
}

interface IndexKey {
  name: string;
  key: string;
}

async function indexKeys(client: ClientBase, oid: number): Promise<IndexKey[]> {
  const { rows } = await client.query<IndexKey>(
    `SELECT c.relname AS name,
            json_build_array(i.indisunique, i.indisprimary, am.amname, i.indnkeyatts,
              (SELECT array_agg(pg_get_indexdef(i.indexrelid, k, true) ORDER BY k)
                 FROM generate_series(1, i.indnatts) k),
              pg_get_expr(i.indpred, i.indrelid, true))::text AS key
       FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam
      WHERE i.indrelid = $1 ORDER BY c.relname`,
    [oid],
  );
  return rows;
}

/** Pairs each old index with an unpaired new one of the same definition. */
function pairIndexes(old: IndexKey[], fresh: IndexKey[], archive: string): IndexRename[] {
  const free = [...fresh];
  const renames: IndexRename[] = [];
  const newRenames: IndexRename[] = [];
  for (const o of old) {
    const at = free.findIndex((n) => n.key === o.key);
    if (at < 0) continue;
    const n = free.splice(at, 1)[0]!;
    if (n.name === o.name) continue;
    renames.push({ side: 'old', from: o.name, to: archivedIndexName(o.name, archive) });
    newRenames.push({ side: 'new', from: n.name, to: o.name });
  }
  // Old names first, so the names are free when the new indexes take them.
  return [...renames, ...newRenames];
}

function renameIndexSql(schema: string, r: { from: string; to: string }): string {
  return `ALTER INDEX ${qual(schema, r.from)} RENAME TO ${quoteIdent(r.to)}`;
}

export async function commentSql(
  client: ClientBase,
  what: string,
  text: string | null,
): Promise<string> {
  const { rows } = await client.query<{ sql: string }>(
    `SELECT format('COMMENT ON %s IS %s', $1::text, coalesce(quote_literal($2::text), 'NULL')) AS sql`,
    [what, text],
  );
  return rows[0]!.sql;
}

/**
 * Read-only: problems that would make the swap fail or lose something, found before any lock is
 * taken (and by `plan check`, on the dependents alone).
 */
export async function swapProblems(client: ClientBase, spec: SwapSpec): Promise<string[]> {
  const problems: string[] = [];
  const { original, shadow } = spec;
  if (original.schema !== shadow.schema)
    problems.push(
      `the new table ${shadow.schema}.${shadow.table} is in another schema than ${original.schema}.${original.table}: a swap renames within one schema, so create the new table in ${original.schema}`,
    );
  const record = await readSwapRecord(client, spec.migration);
  if (record?.state === 'swapped' && record.archive === spec.archive) return problems;
  if (record?.state === 'swapped')
    problems.push(
      `plan ${spec.migration} is already swapped (archive ${record.archive}) by another run: abort or finish that run first`,
    );
  if ((await relOid(client, original)) === null)
    problems.push(`table ${original.schema}.${original.table} does not exist`);
  if ((await relOid(client, shadow)) === null)
    problems.push(`new table ${shadow.schema}.${shadow.table} does not exist`);
  if ((await relOid(client, { schema: original.schema, table: spec.archive })) !== null)
    problems.push(
      `${original.schema}.${spec.archive} already exists, so the old table cannot be archived under that name: drop or rename it, or give the swap step another archive name`,
    );
  for (const d of refusals(await inspectDependents(client, original)))
    problems.push(`${d.kind} ${d.name}: ${d.action}`);
  return problems;
}

/**
 * One attempt at the swap. Returns `done: false` without having changed anything when a long
 * transaction holds or waits on the tables, or when the locks were not granted in time; the
 * caller waits (visibly) and tries again. Throws UserError for states a retry cannot change.
 */
export async function attemptSwap(client: ClientBase, spec: SwapSpec): Promise<SwapAttempt> {
  await ensureSwapTables(client);
  const problems = await swapProblems(client, spec);
  if (problems.length) throw new UserError(`swap refused: ${problems.join('; ')}`);
  const existing = await readSwapRecord(client, spec.migration);
  if (existing?.state === 'swapped' && existing.archive === spec.archive)
    return { done: true, already: true, record: existing };

  const { original, shadow } = spec;
  const oldOid = (await relOid(client, original))!;
  const newOid = (await relOid(client, shadow))!;
  const children = (await foreignKeysIn(client, oldOid)).map((f) => ({
    schema: f.schema,
    table: f.table,
  }));
  const childOids = (
    await Promise.all(children.map((c) => relOid(client, { schema: c.schema, table: c.table })))
  ).filter((x): x is number => x !== null);
  const oids = [oldOid, newOid, ...childOids];
  const blockers = await findBlockers(client, oids, spec.blockerAgeMs ?? spec.lockTimeoutMs);
  if (blockers.length) return { done: false, reason: 'blocked', blockers };

  await client.query('BEGIN');
  try {
    // Old before new, the order the forward sync takes them (the reverse sync never waits for
    // the old table); the children, and the modes and order of each try: src/swap/locks.ts.
    const locks = await lockForSwap(
      client,
      {
        parents: [qual(original.schema, original.table), qual(shadow.schema, shadow.table)],
        children: children.map((c) => qual(c.schema, c.table)),
      },
      { lockTimeoutMs: spec.lockTimeoutMs },
    );
    const record = await swapInLockedTransaction(client, spec, oldOid, newOid);
    await client.query('COMMIT');
    return { done: true, already: false, record, lockTries: locks.tries };
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    if (isLockTimeout(err))
      return {
        done: false,
        reason: 'lock-timeout',
        blockers: await findBlockers(client, oids, 0),
        ...(err instanceof SwapLockTimeout ? { lockTries: err.result.tries } : {}),
      };
    throw err;
  }
}

async function swapInLockedTransaction(
  client: ClientBase,
  spec: SwapSpec,
  oldOid: number,
  newOid: number,
): Promise<SwapRecord> {
  const { original, shadow, archive } = spec;
  const schema = original.schema;
  const origName = qual(schema, original.table);
  // Read everything while the old table still has its name (see the file comment).
  const fks = await foreignKeysIn(client, oldOid);
  const views = await dependentViews(client, oldOid);
  const triggers = await appTriggers(client, oldOid);
  const seqs = await sequenceUses(client, oldOid);
  const facts = await tableFacts(client, oldOid);
  const newFacts = await tableFacts(client, newOid);
  const grants = await grantStatements(client, oldOid, origName);
  const pols = await policies(client, oldOid, origName);
  const { rows: newCols } = await client.query<{ name: string }>(
    `SELECT attname AS name FROM pg_attribute WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped`,
    [newOid],
  );
  const newColumns = new Set(newCols.map((c) => c.name));
  const { rows: colComments } = await client.query<{ name: string; comment: string }>(
    `SELECT attname AS name, col_description(attrelid, attnum) AS comment FROM pg_attribute
      WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped
        AND col_description(attrelid, attnum) IS NOT NULL`,
    [oldOid],
  );
  const indexRenames = pairIndexes(
    await indexKeys(client, oldOid),
    await indexKeys(client, newOid),
    archive,
  );

  for (const sql of spec.stopForwardSync) await client.query(sql);
  // Nothing writes either table now (both locked, the forward trigger gone): what the triggers
  // left as debt is settled here, under the names it was recorded with.
  await drainSyncDebt(client, spec.change, { inTransaction: true });
  await client.query(`ALTER TABLE ${origName} RENAME TO ${quoteIdent(archive)}`);
  await client.query(
    `ALTER TABLE ${qual(shadow.schema, shadow.table)} RENAME TO ${quoteIdent(original.table)}`,
  );
  for (const r of indexRenames) await client.query(renameIndexSql(schema, r));

  const sequences = seqs
    .filter((s) => s.how === 'owned' && newColumns.has(s.column))
    .map((s) => `ALTER SEQUENCE ${s.sequence} OWNED BY ${origName}.${quoteIdent(s.column)}`);
  for (const sql of sequences) await client.query(sql);

  const foreignKeys = fks.map((f) => {
    const child = qual(f.schema, f.table);
    return {
      table: child,
      name: f.name,
      drop: `ALTER TABLE ${child} DROP CONSTRAINT ${quoteIdent(f.name)}`,
      add: `ALTER TABLE ${child} ADD CONSTRAINT ${quoteIdent(f.name)} ${f.definition.replace(/ NOT VALID$/, '')} NOT VALID`,
      validate: `ALTER TABLE ${child} VALIDATE CONSTRAINT ${quoteIdent(f.name)}`,
    };
  });
  for (const f of foreignKeys) {
    await client.query(f.drop);
    await client.query(f.add);
  }

  const viewSql: ViewStatements[] = [];
  for (const v of views) viewSql.push(await viewStatements(client, v));
  for (const v of viewSql) await recreateView(client, v);

  const archiveName = qual(schema, archive);
  for (const t of triggers) {
    await client.query(`DROP TRIGGER IF EXISTS ${quoteIdent(t.name)} ON ${origName}`);
    await client.query(t.definition);
    if (t.enabled === 'D')
      await client.query(`ALTER TABLE ${origName} DISABLE TRIGGER ${quoteIdent(t.name)}`);
    await client.query(`ALTER TABLE ${archiveName} DISABLE TRIGGER ${quoteIdent(t.name)}`);
  }

  if (newFacts.owner !== facts.owner)
    await client.query(`ALTER TABLE ${origName} OWNER TO ${quoteIdent(facts.owner)}`);
  for (const sql of grants) await client.query(sql);
  for (const p of pols) {
    await client.query(`DROP POLICY IF EXISTS ${quoteIdent(p.name)} ON ${origName}`);
    await client.query(p.definition);
  }
  if (facts.rls) await client.query(`ALTER TABLE ${origName} ENABLE ROW LEVEL SECURITY`);
  if (facts.forceRls) await client.query(`ALTER TABLE ${origName} FORCE ROW LEVEL SECURITY`);
  await client.query(await commentSql(client, `TABLE ${origName}`, facts.comment));
  for (const c of colComments.filter((x) => newColumns.has(x.name)))
    await client.query(
      await commentSql(client, `COLUMN ${origName}.${quoteIdent(c.name)}`, c.comment),
    );

  for (const sql of spec.startReverseSync) await client.query(sql);
  // Code (or a router) that still names the new table's temporary name keeps working.
  await client.query(
    `CREATE VIEW ${qual(shadow.schema, shadow.table)} AS SELECT * FROM ${origName}`,
  );

  const record: SwapRecord = {
    migration: spec.migration,
    schema,
    original: original.table,
    shadow: shadow.table,
    archive,
    state: 'swapped',
    indexRenames,
    foreignKeys,
    views: viewSql,
    triggers: triggers.map((t) => ({ name: t.name, create: t.definition })),
    sequences,
    identity: seqs
      .filter((s) => s.how === 'identity' && newColumns.has(s.column))
      .map((s) => ({ column: s.column, sequence: s.sequence, kind: s.identityKind ?? 'd' })),
    shadowComment: newFacts.comment,
    reverseSync: spec.startReverseSync.length > 0,
  };
  await flagRoute(client, spec.migration, true);
  await writeSwapRecord(client, record);
  return record;
}

export type SwapBackAttempt =
  /** `swappedBack`: the names are back by a swap-back (this one or an earlier attempt's). */
  | { done: true; already: boolean; swappedBack: boolean; lockTries?: SwapLockTry[] }
  | {
      done: false;
      reason: 'blocked' | 'lock-timeout';
      blockers: Blocker[];
      lockTries?: SwapLockTry[];
    };

/**
 * One attempt at putting the names back: the archive becomes the original table again (with
 * every write made since the swap, which the reverse sync carried), the new table gets its
 * temporary name back and the sync runs as before the swap. Idempotent: without a 'swapped'
 * record there is nothing to do.
 */
export async function attemptSwapBack(
  client: ClientBase,
  spec: SwapBackSpec,
): Promise<SwapBackAttempt> {
  const record = await readSwapRecord(client, spec.migration);
  if (!record || record.state !== 'swapped' || record.archive !== spec.archive)
    return {
      done: true,
      already: true,
      swappedBack: record?.state === 'back' && record.archive === spec.archive,
    };
  if (record.mode === 'rename')
    throw new UserError(
      `plan ${spec.migration} was renamed, not swapped: undo it with a rename-back`,
    );
  if (record.state === 'swapped' && !record.reverseSync)
    throw new UserError(
      `plan ${spec.migration} was swapped without a reverse sync (no down mapping), so the archive misses the writes made since: a swap-back would lose them`,
    );
  const schema = record.schema;
  const current = { schema, table: record.original };
  const arch = { schema, table: record.archive };
  const newOid = await relOid(client, current);
  const oldOid = await relOid(client, arch);
  if (newOid === null || oldOid === null)
    throw new UserError(
      `swap-back of ${spec.migration}: ${newOid === null ? `${schema}.${record.original}` : `${schema}.${record.archive}`} is missing`,
    );
  const childOids = (
    await Promise.all(
      record.foreignKeys.map((f) =>
        client.query<{ oid: number }>(`SELECT $1::regclass::oid::int AS oid`, [f.table]),
      ),
    )
  ).map((r) => r.rows[0]!.oid);
  const oids = [newOid, oldOid, ...childOids];
  const blockers = await findBlockers(client, oids, spec.blockerAgeMs ?? spec.lockTimeoutMs);
  if (blockers.length) return { done: false, reason: 'blocked', blockers };

  const origName = qual(schema, record.original);
  await client.query('BEGIN');
  let lockTries: SwapLockTry[] | undefined;
  try {
    // The temporary name's view first, in the order a write through it takes its locks: the
    // DROP VIEW below then never queues for it while holding the tables (a deadlock with it).
    const { rows: view } = await client.query<{ ok: boolean }>(
      `SELECT to_regclass($1) IS NOT NULL AS ok`,
      [qual(schema, record.shadow)],
    );
    lockTries = (
      await lockForSwap(
        client,
        {
          parents: [
            ...(view[0]!.ok ? [qual(schema, record.shadow)] : []),
            origName,
            qual(schema, record.archive),
          ],
          children: record.foreignKeys.map((f) => f.table),
        },
        { lockTimeoutMs: spec.lockTimeoutMs },
      )
    ).tries;
    // The reverse sync's debt (new → archive) is settled while the names are still swapped.
    await drainSyncDebt(client, spec.swapped, { inTransaction: true });
    await client.query(`DROP VIEW IF EXISTS ${qual(schema, record.shadow)}`);
    for (const t of record.triggers)
      await client.query(`DROP TRIGGER IF EXISTS ${quoteIdent(t.name)} ON ${origName}`);
    await client.query(`ALTER TABLE ${origName} RENAME TO ${quoteIdent(record.shadow)}`);
    await client.query(
      `ALTER TABLE ${qual(schema, record.archive)} RENAME TO ${quoteIdent(record.original)}`,
    );
    const back = record.indexRenames
      .filter((r) => r.side === 'new')
      .map((r) => ({ from: r.to, to: r.from }))
      .concat(
        record.indexRenames
          .filter((r) => r.side === 'old')
          .map((r) => ({ from: r.to, to: r.from })),
      );
    for (const r of back) await client.query(renameIndexSql(schema, r));
    for (const sql of record.sequences) await client.query(sql);
    for (const f of record.foreignKeys) {
      await client.query(f.drop);
      await client.query(f.add);
    }
    for (const v of record.views) await recreateView(client, v);
    for (const t of record.triggers)
      await client.query(`ALTER TABLE ${origName} ENABLE TRIGGER ${quoteIdent(t.name)}`);
    await client.query(
      await commentSql(client, `TABLE ${qual(schema, record.shadow)}`, record.shadowComment),
    );
    for (const sql of spec.restoreSync) await client.query(sql);
    await flagRoute(client, spec.migration, false);
    await writeSwapRecord(client, { ...record, state: 'back' });
    await client.query('COMMIT');
    return { done: true, already: false, swappedBack: true, lockTries };
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    if (isLockTimeout(err))
      return {
        done: false,
        reason: 'lock-timeout',
        blockers: await findBlockers(client, oids, 0),
        ...(err instanceof SwapLockTimeout ? { lockTries: err.result.tries } : {}),
      };
    throw err;
  }
}

/**
 * After a swap or a swap-back: VALIDATE the foreign keys that were added NOT VALID (other
 * tables' keys re-pointed, the new table's own outgoing keys). VALIDATE takes only SHARE UPDATE
 * EXCLUSIVE, so writes go on. Returns the constraints validated.
 */
export async function validateForeignKeys(
  client: ClientBase,
  table: TableRef,
  lockTimeoutMs: number,
): Promise<string[]> {
  const oid = await relOid(client, table);
  if (oid === null) return [];
  const { rows } = await client.query<{ rel: string; name: string }>(
    `SELECT k.conrelid::regclass::text AS rel, k.conname AS name FROM pg_constraint k
      WHERE k.contype = 'f' AND NOT k.convalidated AND (k.confrelid = $1 OR k.conrelid = $1)`,
    [oid],
  );
  const done: string[] = [];
  for (const r of rows) {
    await client.query(`SELECT set_config('lock_timeout', $1, false)`, [`${lockTimeoutMs}ms`]);
    await client.query(`ALTER TABLE ${r.rel} VALIDATE CONSTRAINT ${quoteIdent(r.name)}`);
    done.push(`${r.rel}.${r.name}`);
  }
  return done;
}
