/**
 * Sync debt: keys whose sync write could not be done exactly inside the application's
 * transaction, and the reconciler that settles them later.
 *
 * Why a trigger cannot always write the other table exactly:
 *  - REPEATABLE READ / SERIALIZABLE: the trigger's statements run in the application's snapshot.
 *    A row a backfill batch (or another session) committed after that snapshot is invisible, so
 *    a DELETE misses it (a ghost row would survive) and `INSERT … ON CONFLICT` on it raises
 *    40001 (the application would fail because of cutover).
 *  - Hot keys written through both tables: each side's row lock is taken before any trigger
 *    fires, so a reverse copy that waited for the old row could close a cycle with a forward
 *    copy waiting for the new one (40P01). The reverse copy never waits instead.
 * In those cases the trigger appends (migration, direction, old key, new key) to
 * cutover.sync_debt and lets the application commit. The reconciler then re-copies each pair in
 * READ COMMITTED with both rows locked (old table first): the debt's direction names the side
 * whose committed row is the truth. The latest debt of a pair wins (a later debt was recorded
 * by a later write). Draining is idempotent; a pair whose rows are locked by an application is
 * left for the next round rather than waited for, so the reconciler never joins a deadlock.
 */
import type pg from 'pg';
import { quoteIdent, quoteQualified } from '../../db/ident';
import type { ResolvedChange, TableRef } from '../../plan/types';
import { sqlLiteral, syncNames } from './names';

export const DEBT_SCHEMA = 'cutover';
export const DEBT_TABLE = 'sync_debt';
export const debtTable = quoteQualified(DEBT_SCHEMA, DEBT_TABLE);

/**
 * Append-only with no unique key on the pair: a trigger's debt INSERT must never wait for
 * another transaction (a unique index would make two writers of one hot key wait on each other)
 * nor conflict under REPEATABLE READ. The reconciler deduplicates.
 */
export const createDebtTableSql = [
  `CREATE SCHEMA IF NOT EXISTS ${quoteIdent(DEBT_SCHEMA)}`,
  `CREATE TABLE IF NOT EXISTS ${debtTable} (
     seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
     migration text NOT NULL,
     direction text NOT NULL CHECK (direction IN ('forward', 'reverse')),
     old_key text[] NOT NULL,
     new_key text[] NOT NULL,
     recorded_at timestamptz NOT NULL DEFAULT now())`,
  `CREATE INDEX IF NOT EXISTS ${quoteIdent(`${DEBT_TABLE}_migration_seq`)}
     ON ${debtTable} (migration, seq)`,
  // The triggers run with the application's rights: any writer of the tables may record debt.
  // A forged debt row is harmless (reconciling an equal pair changes nothing).
  `GRANT USAGE ON SCHEMA ${quoteIdent(DEBT_SCHEMA)} TO PUBLIC`,
  `GRANT INSERT ON ${debtTable} TO PUBLIC`,
];

export async function ensureDebtTable(client: pg.ClientBase): Promise<void> {
  for (const sql of createDebtTableSql) await client.query(sql);
}

/** Pending debt rows of one migration (0 when the table does not exist yet). */
export async function syncDebtCount(client: pg.ClientBase, migration: string): Promise<number> {
  if (!(await debtTableExists(client))) return 0;
  const r = await client.query<{ n: string }>(
    `SELECT count(*) AS n FROM ${debtTable} WHERE migration = $1`,
    [migration],
  );
  return Number(r.rows[0]!.n);
}

async function debtTableExists(client: pg.ClientBase): Promise<boolean> {
  const r = await client.query<{ ok: boolean }>(`SELECT to_regclass($1) IS NOT NULL AS ok`, [
    debtTable,
  ]);
  return r.rows[0]!.ok;
}

/** Forgets a migration's debt (its sync is gone; nothing left to reconcile against). */
export async function clearSyncDebt(client: pg.ClientBase, migration: string): Promise<void> {
  if (await debtTableExists(client))
    await client.query(`DELETE FROM ${debtTable} WHERE migration = $1`, [migration]);
}

interface DebtRow {
  seq: string;
  direction: 'forward' | 'reverse';
  old_key: string[];
  new_key: string[];
}

interface Pair {
  o: string[];
  n: string[];
  d: 'forward' | 'reverse';
  seqs: string[];
}

export interface DrainOptions {
  /** Debt rows read per round trip (default 500). */
  batchSize?: number;
  /**
   * The caller already runs a transaction (e.g. the swap step, which holds both tables
   * exclusively): no BEGIN/COMMIT, no lock_timeout change, and a pair that cannot be locked is
   * an error rather than left for later.
   */
  inTransaction?: boolean;
  /** Stop waiting for locked pairs after this long (default 60 s); 0 = one pass only. */
  timeoutMs?: number;
  /** lock_timeout of a reconciler transaction (default 200 ms). */
  lockTimeoutMs?: number;
  onProgress?: (p: DrainResult) => void;
}

export interface DrainResult {
  /** Pairs re-copied (each pair once per round it appeared in). */
  pairs: number;
  /** Debt rows deleted. */
  settled: number;
  /** Debt rows still pending (pairs locked by applications until the timeout). */
  remaining: number;
}

async function keyTypes(client: pg.ClientBase, t: TableRef, key: string[]): Promise<string[]> {
  const r = await client.query<{ attname: string; type: string }>(
    `SELECT attname, format_type(atttypid, atttypmod) AS type FROM pg_attribute
      WHERE attrelid = $1::regclass AND attname = ANY($2::text[]) AND NOT attisdropped`,
    [quoteQualified(t.schema, t.table), key],
  );
  return key.map((k) => {
    const row = r.rows.find((x) => x.attname === k);
    if (!row) throw new Error(`key column "${k}" not found in ${t.schema}.${t.table}`);
    return row.type;
  });
}

/** The statements of one reconcile step; `$1` is always the JSON array of pairs. */
function reconcileSql(change: ResolvedChange, oldTypes: string[], newTypes: string[]) {
  const oldT = quoteQualified(change.source.schema, change.source.table);
  const newT = quoteQualified(change.target.schema, change.target.table);
  const ok = change.sourceKey.map((k) => quoteIdent(k));
  const nk = change.targetKey.map((k) => quoteIdent(k));
  const oCast = oldTypes.map((t, i) => `p.o[${i + 1}]::${t}`).join(', ');
  const nCast = newTypes.map((t, i) => `p.n[${i + 1}]::${t}`).join(', ');
  const pairs = `jsonb_to_recordset($1::jsonb) AS p(o text[], n text[], d text)`;
  const oCols = (a: string) => ok.map((k) => `${a}.${k}`).join(', ');
  const nCols = (a: string) => nk.map((k) => `${a}.${k}`).join(', ');
  const upsert = (to: string, toKey: string[], from: string, mapping: ResolvedChange['up']) => {
    const nonKey = mapping.filter((m) => !toKey.includes(m.column));
    const cols = mapping.map((m) => quoteIdent(m.column)).join(', ');
    const exprs = mapping.map((m) => `(${m.expression})`).join(', ');
    const set = nonKey.map((m) => `${quoteIdent(m.column)} = EXCLUDED.${quoteIdent(m.column)}`);
    const distinct = `(${nonKey.map((m) => `t.${quoteIdent(m.column)}`).join(', ')}) IS DISTINCT FROM (${nonKey.map((m) => `EXCLUDED.${quoteIdent(m.column)}`).join(', ')})`;
    return { cols, exprs, set, distinct, to, from };
  };
  const fwd = upsert(newT, change.targetKey, oldT, change.up);
  const conflictNew = nk.join(', ');
  const conflictOld = ok.join(', ');
  const onConflict = (u: ReturnType<typeof upsert>, conflict: string) =>
    u.set.length
      ? `ON CONFLICT (${conflict}) DO UPDATE SET ${u.set.join(', ')} WHERE ${u.distinct}`
      : `ON CONFLICT (${conflict}) DO NOTHING`;
  const sql = {
    // Which rows exist, and which of them we could lock (old table first, in key order).
    existingOld: `SELECT ARRAY[${ok.map((k) => `s.${k}::text`).join(', ')}] AS k FROM ${oldT} AS s
       WHERE (${oCols('s')}) IN (SELECT ${oCast} FROM ${pairs})`,
    lockOld: (skip: boolean) => `SELECT ARRAY[${ok.map((k) => `s.${k}::text`).join(', ')}] AS k
       FROM ${oldT} AS s WHERE (${oCols('s')}) IN (SELECT ${oCast} FROM ${pairs})
       ORDER BY ${oCols('s')} FOR UPDATE OF s${skip ? ' SKIP LOCKED' : ''}`,
    existingNew: `SELECT ARRAY[${nk.map((k) => `t.${k}::text`).join(', ')}] AS k FROM ${newT} AS t
       WHERE (${nCols('t')}) IN (SELECT ${nCast} FROM ${pairs})`,
    lockNew: (skip: boolean) => `SELECT ARRAY[${nk.map((k) => `t.${k}::text`).join(', ')}] AS k
       FROM ${newT} AS t WHERE (${nCols('t')}) IN (SELECT ${nCast} FROM ${pairs})
       ORDER BY ${nCols('t')} FOR UPDATE OF t${skip ? ' SKIP LOCKED' : ''}`,
    // forward: the old row is the truth.
    forwardUpsert: `INSERT INTO ${newT} AS t (${fwd.cols})
       SELECT ${fwd.exprs} FROM (SELECT * FROM ${oldT} AS s
         WHERE (${oCols('s')}) IN (SELECT ${oCast} FROM ${pairs} WHERE p.d = 'forward')) AS s
       ${onConflict(fwd, conflictNew)}`,
    forwardDelete: `DELETE FROM ${newT} AS t USING ${pairs}
       WHERE p.d = 'forward' AND (${nCols('t')}) = (${nCast})
         AND NOT EXISTS (SELECT 1 FROM ${oldT} AS s WHERE (${oCols('s')}) = (${oCast}))`,
    reverseUpsert: null as string | null,
    reverseDelete: `DELETE FROM ${oldT} AS t USING ${pairs}
       WHERE p.d = 'reverse' AND (${oCols('t')}) = (${oCast})
         AND NOT EXISTS (SELECT 1 FROM ${newT} AS s WHERE (${nCols('s')}) = (${nCast}))`,
  };
  if (change.down) {
    const rev = upsert(oldT, change.sourceKey, newT, change.down);
    sql.reverseUpsert = `INSERT INTO ${oldT} AS t (${rev.cols})
       SELECT ${rev.exprs} FROM (SELECT * FROM ${newT} AS s
         WHERE (${nCols('s')}) IN (SELECT ${nCast} FROM ${pairs} WHERE p.d = 'reverse')) AS s
       ${onConflict(rev, conflictOld)}`;
  }
  return sql;
}

const RETRYABLE = new Set(['40001', '40P01', '55P03']);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const keyOf = (k: string[]) => JSON.stringify(k);

/**
 * Settles the sync debt of `change` (its source = the table the forward sync reads, target =
 * the one it writes; pass other refs after a rename). Keyset over the debt's seq, one short
 * READ COMMITTED transaction per batch unless `inTransaction`. Returns when no debt is left, or
 * when the pairs still pending stayed locked for `timeoutMs`.
 */
export async function drainSyncDebt(
  client: pg.ClientBase,
  change: ResolvedChange,
  options: DrainOptions = {},
): Promise<DrainResult> {
  const result: DrainResult = { pairs: 0, settled: 0, remaining: 0 };
  // Cheap when there is nothing to do (the usual case), and safe for a plan whose tables are
  // not there (yet): the key types below are only looked up when debt exists.
  if (!(await syncDebtCount(client, change.name))) return result;
  const batchSize = options.batchSize ?? 500;
  const deadline = Date.now() + (options.timeoutMs ?? 60_000);
  const sql = reconcileSql(
    change,
    await keyTypes(client, change.source, change.sourceKey),
    await keyTypes(client, change.target, change.targetKey),
  );
  const guard = sqlLiteral(syncNames(change).guardSetting);
  for (let round = 0; ; round++) {
    let after = '0';
    let skippedThisRound = 0;
    for (;;) {
      const batch = await client.query<DebtRow>(
        // ORDER BY d.seq: a bare `seq` would sort by the text output column.
        `SELECT d.seq::text AS seq, d.direction, d.old_key, d.new_key FROM ${debtTable} AS d
          WHERE d.migration = $1 AND d.seq > $2::bigint ORDER BY d.seq LIMIT $3`,
        [change.name, after, batchSize],
      );
      if (!batch.rows.length) break;
      after = batch.rows[batch.rows.length - 1]!.seq;
      // One entry per pair; rows come in seq order, so the last one seen decides the direction.
      const byPair = new Map<string, Pair>();
      for (const r of batch.rows) {
        const id = keyOf([...r.old_key, '\u0000', ...r.new_key]);
        const p = byPair.get(id) ?? { o: r.old_key, n: r.new_key, d: r.direction, seqs: [] };
        p.d = r.direction;
        p.seqs.push(r.seq);
        byPair.set(id, p);
      }
      const outcome = await settleBatch(client, change, sql, guard, [...byPair.values()], options);
      result.pairs += outcome.pairs;
      result.settled += outcome.settled;
      skippedThisRound += outcome.skipped;
      options.onProgress?.({ ...result, remaining: skippedThisRound });
    }
    result.remaining = skippedThisRound;
    if (!skippedThisRound || options.inTransaction || Date.now() >= deadline) break;
    await sleep(Math.min(1000, 50 * 2 ** Math.min(round, 5)));
  }
  if (options.inTransaction && result.remaining)
    throw new Error(
      `sync debt of "${change.name}": ${result.remaining} entries could not be settled inside the caller's transaction`,
    );
  return result;
}

async function settleBatch(
  client: pg.ClientBase,
  change: ResolvedChange,
  sql: ReturnType<typeof reconcileSql>,
  guard: string,
  pairs: Pair[],
  options: DrainOptions,
): Promise<{ pairs: number; settled: number; skipped: number }> {
  const own = !options.inTransaction;
  const allSeqs = pairs.flatMap((p) => p.seqs).length;
  const attempt = async () => {
    const json = JSON.stringify(pairs.map(({ o, n, d }) => ({ o, n, d })));
    const existingOld = new Set(
      (await client.query<{ k: string[] }>(sql.existingOld, [json])).rows.map((r) => keyOf(r.k)),
    );
    const lockedOld = new Set(
      (await client.query<{ k: string[] }>(sql.lockOld(own), [json])).rows.map((r) => keyOf(r.k)),
    );
    const existingNew = new Set(
      (await client.query<{ k: string[] }>(sql.existingNew, [json])).rows.map((r) => keyOf(r.k)),
    );
    const lockedNew = new Set(
      (await client.query<{ k: string[] }>(sql.lockNew(own), [json])).rows.map((r) => keyOf(r.k)),
    );
    // A row that exists but is locked by someone else is being written right now: its writer's
    // trigger (or a later drain) settles the pair, so do not wait for it.
    const ready = pairs.filter(
      (p) =>
        (!existingOld.has(keyOf(p.o)) || lockedOld.has(keyOf(p.o))) &&
        (!existingNew.has(keyOf(p.n)) || lockedNew.has(keyOf(p.n))),
    );
    if (ready.length) {
      const readyJson = JSON.stringify(ready.map(({ o, n, d }) => ({ o, n, d })));
      if (ready.some((p) => p.d === 'forward')) {
        await client.query(sql.forwardUpsert, [readyJson]);
        await client.query(sql.forwardDelete, [readyJson]);
      }
      if (ready.some((p) => p.d === 'reverse')) {
        if (!sql.reverseUpsert)
          throw new Error(`plan "${change.name}" has reverse sync debt but no down mapping`);
        await client.query(sql.reverseUpsert, [readyJson]);
        await client.query(sql.reverseDelete, [readyJson]);
      }
      await client.query(`DELETE FROM ${debtTable} WHERE seq = ANY($1::bigint[])`, [
        ready.flatMap((p) => p.seqs),
      ]);
    }
    const settled = ready.flatMap((p) => p.seqs).length;
    return { pairs: ready.length, settled, skipped: allSeqs - settled };
  };
  if (!own) {
    const prev = await client.query<{ g: string | null }>(
      `SELECT current_setting(${guard}, true) AS g`,
    );
    await client.query(`SELECT set_config(${guard}, 'on', true)`);
    try {
      return await attempt();
    } finally {
      await client.query(`SELECT set_config(${guard}, $1, true)`, [prev.rows[0]!.g ?? '']);
    }
  }
  for (let tries = 1; ; tries++) {
    await client.query('BEGIN ISOLATION LEVEL READ COMMITTED');
    try {
      await client.query(`SELECT set_config(${guard}, 'on', true)`);
      await client.query(`SELECT set_config('lock_timeout', $1, true)`, [
        `${options.lockTimeoutMs ?? 200}ms`,
      ]);
      const out = await attempt();
      await client.query('COMMIT');
      return out;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      const code = (err as { code?: string }).code;
      if (!code || !RETRYABLE.has(code)) throw err;
      // Contended (e.g. an application's uncommitted insert of the same key): leave the whole
      // batch for the next round instead of waiting.
      if (tries >= 3) return { pairs: 0, settled: 0, skipped: allSeqs };
      await sleep(20 * tries);
    }
  }
}
