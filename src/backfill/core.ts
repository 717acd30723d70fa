/**
 * Keyset backfill: copies the source table into the target through the `up` mapping in batches
 * ordered by key (row-value comparison, no offset paging), each batch its own short transaction,
 * never overwriting a row: `ON CONFLICT (key) DO NOTHING` where the sync trigger has already
 * written rows (a plain INSERT, redone with ON CONFLICT on a duplicate, elsewhere), so a newer
 * row written by the trigger always wins.
 *
 * Ghost rows (a row deleted while its batch is copied must not survive) are closed by one of:
 *  - 'debt':  the default. The batch takes no row locks. A sync trigger whose DELETE finds no
 *             row in the target records the key as sync debt (steps/sync/triggers.ts), at every
 *             isolation level: the row may be in a batch that commits later (READ COMMITTED) or
 *             invisible to the writer's snapshot (REPEATABLE READ). The reconciler deletes the
 *             copy once no batch is in flight: after the last batch of a whole-table backfill,
 *             after all ranges of a split one, first thing in verify, inside the swap.
 *  - 'lock':  the batch reads its source rows FOR KEY SHARE, so a DELETE (or key UPDATE) waits
 *             for the batch to commit and its trigger then deletes the copied row. Non-key
 *             UPDATEs are not blocked. Marking every row costs a WAL record per row and dirties
 *             the old table's pages (about 0.6× the speed of 'debt'). Used when the installed
 *             triggers predate debt-on-miss (a run in flight across an upgrade).
 *  - 'sweep': after the batch commits and every snapshot older than the commit is gone, delete
 *             target rows in the batch's key range whose key no longer exists in the source
 *             (REPEATABLE READ, retried on serialization failure, so a row re-inserted meanwhile
 *             is never swept). The backfill does not wait itself: sweeps are queued and run once
 *             the horizon has passed. Kept for comparison in the benchmark.
 * Measured side by side in `npm run bench`.
 */
import type pg from 'pg';
import { quoteIdent, quoteQualified } from '../db/ident';
import type { ResolvedChange, TableRef } from '../plan/types';
import { sqlLiteral, syncNames } from '../steps/sync/names';
import { LoadGovernor, type LoadBudget, type ThrottleState } from './load-budget';

export type GhostGuard = 'debt' | 'lock' | 'sweep';

/**
 * Chosen by measurement (npm run bench, rows/s against one INSERT … SELECT, side by side): 'debt'
 * copies without touching the old table's rows; 'lock' writes a lock record into every row it
 * copies and 'sweep' anti-joins every range after the fact, both markedly slower. All three
 * leave the tables equal; 'debt' needs the sync triggers to record misses (they do).
 */
export const DEFAULT_GHOST_GUARD: GhostGuard = 'debt';

/** Bounds on the FIRST key column, as text: rows with after < k1 <= upTo. null = unbounded. */
export interface KeyRange {
  after: string | null;
  upTo: string | null;
}

export interface BackfillCheckpoint {
  /** Full key of the last row copied (as text, in key order), null before the first batch. */
  lastKey: string[] | null;
  /** Source rows read and copied (or found already present) so far. */
  rowsDone: number;
  batches: number;
  /**
   * Rows the backfill itself inserted so far (optional: checkpoints written before it was kept).
   * Restored on resume so the figure continues instead of restarting from zero.
   */
  rowsInserted?: number;
  /**
   * With the sweep guard: the key after which copied ranges may still need sweeping (null =
   * from the start). A resumed run sweeps (sweepFrom, lastKey] first.
   */
  sweepPending?: { after: string[] | null } | null;
}

export interface BackfillThrottle {
  /** Rows per batch (the ceiling in adaptive mode). */
  batchSize: number;
  /** Pause between batches (the floor in adaptive mode). */
  sleepMs: number;
  paused: boolean;
  /**
   * AIMD on the backfill's own batch latency: halve the batch and double the sleep when a
   * batch takes longer than targetBatchMs. Replaces the load budget while on.
   */
  adaptive: boolean;
  /** Obey the load budget (when the run has one): false = fixed batch size and sleep. */
  loadBudget: boolean;
  targetBatchMs: number;
  minBatchSize: number;
  maxSleepMs: number;
}

export const defaultThrottle: BackfillThrottle = {
  batchSize: 10_000,
  sleepMs: 0,
  paused: false,
  adaptive: false,
  loadBudget: true,
  targetBatchMs: 500,
  minBatchSize: 500,
  maxSleepMs: 5_000,
};

export interface BackfillProgress extends BackfillCheckpoint {
  plan: string;
  range: KeyRange | null;
  ghostGuard: GhostGuard;
  /** Rows actually inserted by the backfill (rowsDone minus rows the trigger had written). */
  rowsInserted: number;
  estimatedTotal: number;
  /** 0..100, capped: estimates come from pg_class.reltuples. */
  percent: number;
  rowsPerSecond: number;
  etaSeconds: number | null;
  batchSize: number;
  sleepMs: number;
  paused: boolean;
  lastBatchMs: number;
  /** "throttled: <reason>" comes from here: the load budget's latest judgement. */
  throttled: string | null;
  loadThrottle: ThrottleState | null;
  state: 'running' | 'paused' | 'done' | 'cancelled';
  updatedAt: string;
}

export interface BackfillHooks {
  /** Called inside each batch transaction, after the batch statement, before COMMIT. */
  beforeCommit?: (batch: { lastKey: string[]; rows: number }) => Promise<void>;
}

export interface BackfillOptions {
  ghostGuard?: GhostGuard;
  range?: KeyRange | null;
  resumeFrom?: BackfillCheckpoint | null;
  /** Initial throttle; getControl() values override it as they change. */
  throttle?: Partial<BackfillThrottle>;
  /** Polled between batches (at most every controlPollMs) and while paused. */
  getControl?: () => Promise<Partial<BackfillThrottle> | null | undefined>;
  controlPollMs?: number;
  /** Called after every committed batch (and on pause / end) with the new checkpoint. */
  onProgress?: (progress: BackfillProgress) => void | Promise<void>;
  /** Checked between batches and while sleeping / paused. */
  isCancelled?: () => boolean;
  signal?: AbortSignal;
  /** Total rows for progress; estimated from pg_class.reltuples when omitted. */
  estimatedTotal?: number;
  hooks?: BackfillHooks;
  /** What the application may lose to the copy; off when absent or not enabled. */
  loadBudget?: LoadBudget | null;
}

export interface BackfillResult {
  progress: BackfillProgress;
  cancelled: boolean;
}

interface KeyColumn {
  name: string;
  type: string;
}

const RETRYABLE = new Set(['40001', '40P01', '55P03']);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function keyColumns(client: pg.ClientBase, t: TableRef, key: string[]): Promise<KeyColumn[]> {
  const r = await client.query<{ attname: string; type: string }>(
    `SELECT attname, format_type(atttypid, atttypmod) AS type FROM pg_attribute
      WHERE attrelid = $1::regclass AND attname = ANY($2::text[]) AND NOT attisdropped`,
    [quoteQualified(t.schema, t.table), key],
  );
  return key.map((k) => {
    const row = r.rows.find((x) => x.attname === k);
    if (!row) throw new Error(`key column "${k}" not found in ${t.schema}.${t.table}`);
    return { name: k, type: row.type };
  });
}

export async function estimateRows(client: pg.ClientBase, t: TableRef): Promise<number> {
  const r = await client.query<{ n: string }>(
    `SELECT reltuples::bigint AS n FROM pg_class WHERE oid = $1::regclass`,
    [quoteQualified(t.schema, t.table)],
  );
  const n = Number(r.rows[0]?.n ?? -1);
  if (n >= 0) return n;
  // Never analysed (reltuples = -1): a one-off count; fine for the tables that are in that state.
  const c = await client.query<{ n: string }>(
    `SELECT count(*) AS n FROM ${quoteQualified(t.schema, t.table)}`,
  );
  return Number(c.rows[0]!.n);
}

/** SQL pieces shared by the batch and sweep statements. */
class BatchSql {
  readonly src: string;
  readonly dst: string;
  readonly keyList: string;
  readonly keyDesc: string;
  readonly keyText: string;
  readonly guardSql: string;
  readonly insertCols: string;
  readonly insertExprs: string;
  readonly conflict: string;
  constructor(
    readonly change: ResolvedChange,
    readonly key: KeyColumn[],
    /** The new table's key columns (their types may differ: int → bigint). */
    readonly targetKey: KeyColumn[] = [],
  ) {
    this.src = quoteQualified(change.source.schema, change.source.table);
    this.dst = quoteQualified(change.target.schema, change.target.table);
    this.keyList = key.map((k) => quoteIdent(k.name)).join(', ');
    this.keyDesc = key.map((k) => `${quoteIdent(k.name)} DESC`).join(', ');
    this.keyText = `ARRAY[${key.map((k) => `${quoteIdent(k.name)}::text`).join(', ')}]`;
    this.guardSql = `SELECT set_config(${sqlLiteral(syncNames(change).guardSetting)}, 'on', true)`;
    this.insertCols = change.up.map((m) => quoteIdent(m.column)).join(', ');
    this.insertExprs = change.up.map((m) => `(${m.expression})`).join(', ');
    this.conflict = change.targetKey.map(quoteIdent).join(', ');
  }

  /** `(k1, k2) > ($n::t1, $n+1::t2)` with params appended to `params`. */
  keyCompare(op: '>' | '<=', keyValues: string[], params: unknown[], prefix = ''): string {
    const placeholders = this.key.map((k, i) => {
      params.push(keyValues[i]);
      return `$${params.length}::${k.type}`;
    });
    const cols = this.key.map((k) => prefix + quoteIdent(k.name)).join(', ');
    return `(${cols}) ${op} (${placeholders.join(', ')})`;
  }

  rangeFilter(range: KeyRange | null, params: unknown[], prefix = ''): string[] {
    const out: string[] = [];
    const first = this.key[0]!;
    if (range?.after != null) {
      params.push(range.after);
      out.push(`${prefix}${quoteIdent(first.name)} > $${params.length}::${first.type}`);
    }
    if (range?.upTo != null) {
      params.push(range.upTo);
      out.push(`${prefix}${quoteIdent(first.name)} <= $${params.length}::${first.type}`);
    }
    return out;
  }
}

interface BatchOutcome {
  rows: number;
  inserted: number;
  lastKey: string[] | null;
  /** Fewer rows than asked for because the source had no more when the batch ran. */
  exhausted: boolean;
}

async function inTransaction<T>(
  client: pg.ClientBase,
  begin: string,
  work: () => Promise<T>,
): Promise<T> {
  await client.query(begin);
  try {
    const out = await work();
    await client.query('COMMIT');
    return out;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  }
}

async function retrying<T>(work: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await work();
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (!code || !RETRYABLE.has(code) || attempt >= 8) throw err;
      await sleep(Math.min(2000, 20 * 2 ** attempt) * (0.5 + Math.random() / 2));
    }
  }
}

/** Key types (format_type) whose max() orders as ORDER BY does. */
const HAS_MAX = /^(smallint|integer|bigint|numeric|text|character varying|date|timestamp)\b/;

const INTEGER_KEY = /^(smallint|integer|bigint)$/;

/** One key column whose text form is the same in both tables, with a max(). */
function unboundedCopyFits(sql: BatchSql): boolean {
  const [s, t] = [sql.key[0], sql.targetKey[0]];
  if (sql.key.length !== 1 || sql.targetKey.length !== 1 || !s || !t) return false;
  if (!HAS_MAX.test(s.type)) return false;
  return s.type === t.type || (INTEGER_KEY.test(s.type) && INTEGER_KEY.test(t.type));
}

/**
 * The common batch in one statement: copies the next `limit` rows after `after`, but only keys
 * below the next row the sync trigger has already written to the new table (one index probe
 * finds it), so a plain INSERT — no speculative insertion — never meets a conflict, and no
 * separate scan is needed to find the batch's upper key: the INSERT returns its count and last
 * key. Returns null when it copied nothing (a trigger-written row is next, or the table is done)
 * or when a trigger wrote into the range meanwhile (unique violation): then the bounded batch
 * below takes over.
 */
async function copyUpToNextWritten(
  client: pg.ClientBase,
  sql: BatchSql,
  after: string[] | null,
  range: KeyRange | null,
  limit: number,
  hooks?: BackfillHooks,
): Promise<BatchOutcome | null> {
  const k = sql.key[0]!;
  const tk = quoteIdent(sql.targetKey[0]!.name);
  const next = await client.query<{ o: string | null }>(
    `SELECT min(${tk})::text AS o FROM ${sql.dst}${after ? ` WHERE ${tk} > $1::${k.type}` : ''}`,
    after ? [after[0]] : [],
  );
  const p: unknown[] = [];
  const w = [...(after ? [sql.keyCompare('>', after, p)] : []), ...sql.rangeFilter(range, p)];
  const written = next.rows[0]?.o ?? null;
  if (written !== null) {
    p.push(written);
    w.push(`${quoteIdent(k.name)} < $${p.length}::${k.type}`);
  }
  p.push(limit);
  const statement = `WITH ins AS (
      INSERT INTO ${sql.dst} (${sql.insertCols})
        SELECT ${sql.insertExprs}
          FROM (SELECT * FROM ${sql.src} ${w.length ? `WHERE ${w.join(' AND ')}` : ''}
                 ORDER BY ${sql.keyList} LIMIT $${p.length}) AS s
        RETURNING ${tk} AS k)
    SELECT count(*)::int AS rows, CASE WHEN count(*) > 0 THEN ARRAY[max(k)::text] END AS last
      FROM ins`;
  try {
    return await inTransaction(client, `BEGIN; ${sql.guardSql}`, async () => {
      const r = (await client.query<{ rows: number; last: string[] | null }>(statement, p))
        .rows[0]!;
      if (!r.rows || !r.last) return null;
      if (hooks?.beforeCommit) await hooks.beforeCommit({ lastKey: r.last, rows: r.rows });
      // Short because the next trigger-written row bounded it is not the end of the table.
      return {
        rows: r.rows,
        inserted: r.rows,
        lastKey: r.last,
        exhausted: written === null && r.rows < limit,
      };
    });
  } catch (err) {
    if ((err as { code?: string }).code === '23505') return null;
    throw err;
  }
}

/**
 * One batch: find its upper key `hi` (the n-th key after `after`, an index-only scan), then copy
 * the key range (after, hi] in one INSERT … SELECT inside a short transaction. A bounded range,
 * not `ORDER BY … LIMIT` inside the INSERT, for two reasons: the copy is a plain index range
 * scan with no sort or materialisation (measured: that is what keeps pace with a single
 * statement), and with FOR KEY SHARE a row re-checked after a concurrent key change is
 * re-tested against the range, so it can never drag the checkpoint past unread keys.
 */
async function copyBatch(
  client: pg.ClientBase,
  sql: BatchSql,
  after: string[] | null,
  range: KeyRange | null,
  limit: number,
  lock: boolean,
  hooks?: BackfillHooks,
): Promise<BatchOutcome> {
  if (!lock && unboundedCopyFits(sql)) {
    const copied = await copyUpToNextWritten(client, sql, after, range, limit, hooks);
    if (copied) return copied;
  }
  const p1: unknown[] = [];
  const w1 = [...(after ? [sql.keyCompare('>', after, p1)] : []), ...sql.rangeFilter(range, p1)];
  p1.push(limit);
  const keys = `SELECT ${sql.keyList} FROM ${sql.src} ${w1.length ? `WHERE ${w1.join(' AND ')}` : ''}
              ORDER BY ${sql.keyList} LIMIT $${p1.length}`;
  // One key column of a type with max(): count and max in one aggregate (measured: a third of
  // the time of the window count, which is a sixth of a 10k-row batch). A row of several
  // columns, or a uuid, has no max().
  const boundSql =
    sql.key.length === 1 && HAS_MAX.test(sql.key[0]!.type)
      ? `SELECT count(*)::int AS rows,
                CASE WHEN count(*) > 0 THEN ARRAY[max(${quoteIdent(sql.key[0]!.name)})::text] END AS last
           FROM (${keys}) AS b`
      : `SELECT (count(*) OVER ())::int AS rows, ${sql.keyText} AS last FROM (${keys}) AS b
          ORDER BY ${sql.keyDesc} LIMIT 1`;
  // In the same statement: is any target row already in the range (written by the sync
  // trigger)? One index probe. The target key carries the source key (same or re-typed), so
  // the same bounds apply; if they did not, the plain INSERT below would fail on the duplicate
  // and fall back anyway. The `after` values are p1's first parameters.
  const tkCols = sql.change.targetKey.map((k) => `t.${quoteIdent(k)}`).join(', ');
  const typed = (value: (i: number) => string) =>
    sql.key.map((k, i) => `${value(i)}::${k.type}`).join(', ');
  const tw = [
    ...(after ? [`(${tkCols}) > (${typed((i) => `$${i + 1}`)})`] : []),
    `(${tkCols}) <= (${typed((i) => `bound.last[${i + 1}]`)})`,
  ];
  const bound = await client.query<{ rows: number; last: string[] | null; occupied: boolean }>(
    `SELECT bound.rows, bound.last,
            EXISTS (SELECT 1 FROM ${sql.dst} AS t WHERE ${tw.join(' AND ')}) AS occupied
       FROM (${boundSql}) AS bound`,
    p1,
  );
  const hi = bound.rows[0]?.last;
  if (!hi) return { rows: 0, inserted: 0, lastKey: null, exhausted: true };
  const p2: unknown[] = [];
  const w2 = [
    ...(after ? [sql.keyCompare('>', after, p2)] : []),
    sql.keyCompare('<=', hi, p2),
    ...sql.rangeFilter(range, p2),
  ];
  const base = `INSERT INTO ${sql.dst} (${sql.insertCols})
      SELECT ${sql.insertExprs}
        FROM (SELECT * FROM ${sql.src} WHERE ${w2.join(' AND ')}${lock ? ' FOR KEY SHARE' : ''}) AS s`;
  const attempt = (onConflict: boolean) =>
    inTransaction(client, `BEGIN; ${sql.guardSql}`, async () => {
      const r = await client.query(
        onConflict ? `${base} ON CONFLICT (${sql.conflict}) DO NOTHING` : base,
        p2,
      );
      if (hooks?.beforeCommit) await hooks.beforeCommit({ lastKey: hi, rows: bound.rows[0]!.rows });
      // hi, not the last row copied: rows in (after, hi] that vanished meanwhile are done too.
      return {
        rows: bound.rows[0]!.rows,
        inserted: r.rowCount ?? 0,
        lastKey: hi,
        exhausted: bound.rows[0]!.rows < limit,
      };
    });
  // ON CONFLICT DO NOTHING costs a speculative insertion per row (measured: about half the
  // speed of a plain INSERT), so it is used only where a trigger-written row may be in the way.
  // A plain INSERT never overwrites either: a row the trigger wrote after the probe makes it
  // fail with a unique violation, and the batch is redone with ON CONFLICT DO NOTHING.
  const occupied = bound.rows[0]!.occupied;
  if (occupied) return attempt(true);
  try {
    return await attempt(false);
  } catch (err) {
    if ((err as { code?: string }).code !== '23505') throw err;
    return attempt(true);
  }
}

/** SQLSTATE class 22 (data exception) or 23 (integrity constraint violation). */
export function isDataError(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && /^2[23]/.test(code);
}

/** A row the mapping or the new table refuses; retrying cannot help. */
export class BackfillDataError extends Error {
  override name = 'BackfillDataError';
  readonly sqlState: string;
  constructor(
    change: ResolvedChange,
    /** Source key of the failing row (text, key order), null when it could not be isolated. */
    readonly key: string[] | null,
    cause: Error & { code: string },
  ) {
    const row = key
      ? `row (${change.sourceKey.join(', ')})=(${key.join(', ')})`
      : 'a row of the batch';
    super(
      `the backfill cannot copy ${row} of ${change.source.schema}.${change.source.table}: ${cause.message} (SQLSTATE ${cause.code}): change the mapping or the new table's column so the row fits, or fix the row, then run the plan again`,
    );
    this.sqlState = cause.code;
  }
}

/**
 * Bisects the failed batch (after, …limit rows] by key, trying each half's INSERT in a
 * transaction that is always rolled back, down to the single row that fails. O(log n) tries.
 */
async function findFailingRow(
  client: pg.ClientBase,
  sql: BatchSql,
  after: string[] | null,
  range: KeyRange | null,
  limit: number,
): Promise<string[] | null> {
  const p: unknown[] = [];
  const w = [...(after ? [sql.keyCompare('>', after, p)] : []), ...sql.rangeFilter(range, p)];
  p.push(limit);
  const keys = (
    await client.query<{ k: string[] }>(
      `SELECT ${sql.keyText} AS k FROM ${sql.src} ${w.length ? `WHERE ${w.join(' AND ')}` : ''}
        ORDER BY ${sql.keyList} LIMIT $${p.length}`,
      p,
    )
  ).rows.map((r) => r.k);
  const fails = async (lo: string[] | null, hi: string[]): Promise<boolean> => {
    const q: unknown[] = [];
    const where = [...(lo ? [sql.keyCompare('>', lo, q)] : []), sql.keyCompare('<=', hi, q)];
    await client.query(`BEGIN; ${sql.guardSql}`);
    try {
      await client.query(
        `INSERT INTO ${sql.dst} (${sql.insertCols})
           SELECT ${sql.insertExprs} FROM (SELECT * FROM ${sql.src} WHERE ${where.join(' AND ')}) AS s
           ON CONFLICT (${sql.conflict}) DO NOTHING`,
        q,
      );
      return false;
    } catch (err) {
      if (!isDataError(err)) throw err;
      return true;
    } finally {
      await client.query('ROLLBACK');
    }
  };
  // Invariant: rows in (lo, keys[hiIdx]] hold a failing row.
  let lo = after;
  let loIdx = 0;
  let hiIdx = keys.length - 1;
  if (hiIdx < 0 || !(await fails(lo, keys[hiIdx]!))) return null;
  while (loIdx < hiIdx) {
    const mid = Math.floor((loIdx + hiIdx) / 2);
    if (await fails(lo, keys[mid]!)) hiIdx = mid;
    else {
      lo = keys[mid]!;
      loIdx = mid + 1;
    }
  }
  return keys[hiIdx]!;
}

/** Deletes target rows in (after, upTo] whose key no longer exists in the source. */
async function sweepRange(
  client: pg.ClientBase,
  sql: BatchSql,
  after: string[] | null,
  upTo: string[],
  range: KeyRange | null,
): Promise<number> {
  const params: unknown[] = [];
  const tk = sql.change.targetKey;
  // The target key columns carry the source key (same or re-typed), compared by position.
  const targetKeyCols = tk.map((k) => `t.${quoteIdent(k)}`).join(', ');
  const placeholders = (vals: string[]) =>
    sql.key.map((k, i) => {
      params.push(vals[i]);
      return `$${params.length}::${k.type}`;
    });
  const where: string[] = [];
  if (after) where.push(`(${targetKeyCols}) > (${placeholders(after).join(', ')})`);
  where.push(`(${targetKeyCols}) <= (${placeholders(upTo).join(', ')})`);
  const first = tk[0]!;
  if (range?.after != null) {
    params.push(range.after);
    where.push(`t.${quoteIdent(first)} > $${params.length}::${sql.key[0]!.type}`);
  }
  if (range?.upTo != null) {
    params.push(range.upTo);
    where.push(`t.${quoteIdent(first)} <= $${params.length}::${sql.key[0]!.type}`);
  }
  const match = sql.key
    .map((k, i) => `s.${quoteIdent(k.name)} = t.${quoteIdent(tk[i]!)}`)
    .join(' AND ');
  const text = `DELETE FROM ${sql.dst} AS t WHERE ${where.join(' AND ')}
      AND NOT EXISTS (SELECT 1 FROM ${sql.src} AS s WHERE ${match})`;
  return retrying(() =>
    inTransaction(client, 'BEGIN ISOLATION LEVEL REPEATABLE READ', async () => {
      await client.query(sql.guardSql);
      const r = await client.query(text, params);
      return r.rowCount ?? 0;
    }),
  );
}

/** First xid not yet assigned right now: a commit-time horizon for the sweep. */
async function currentHorizon(client: pg.ClientBase): Promise<string> {
  const r = await client.query<{ h: string }>(
    `SELECT pg_snapshot_xmax(pg_current_snapshot())::text AS h`,
  );
  return r.rows[0]!.h;
}

/**
 * True once no other client session holds a snapshot or transaction older than the horizon,
 * i.e. every transaction that could have missed the batch's rows has finished. Needs the
 * backend_xmin column of pg_stat_activity (superuser or pg_read_all_stats).
 */
async function horizonPassed(client: pg.ClientBase, horizon: string): Promise<boolean> {
  const r = await client.query<{ ok: boolean }>(
    `SELECT NOT EXISTS (
       SELECT 1 FROM pg_stat_activity
        WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'
          AND (   (backend_xmin IS NOT NULL AND age(backend_xmin) > age(h))
               OR (backend_xid  IS NOT NULL AND age(backend_xid)  > age(h)))
     ) AS ok
     FROM (SELECT (($1::bigint) % 4294967296)::text::xid AS h) AS x`,
    [horizon],
  );
  return r.rows[0]!.ok;
}

function mergeThrottle(base: BackfillThrottle, over?: Partial<BackfillThrottle> | null) {
  if (!over) return base;
  const out = { ...base };
  for (const [k, v] of Object.entries(over))
    if (v !== undefined && v !== null) (out as Record<string, unknown>)[k] = v;
  out.batchSize = Math.max(1, Math.floor(out.batchSize));
  out.minBatchSize = Math.max(1, Math.min(out.minBatchSize, out.batchSize));
  out.sleepMs = Math.max(0, out.sleepMs);
  return out;
}

/**
 * Runs the backfill to the end of the key space (or range), or until cancelled. Uses `client`
 * for every batch (one connection, short transactions); callbacks carry progress out.
 */
export async function runBackfill(
  client: pg.ClientBase,
  change: ResolvedChange,
  opts: BackfillOptions = {},
): Promise<BackfillResult> {
  const ghostGuard = opts.ghostGuard ?? DEFAULT_GHOST_GUARD;
  const range = opts.range ?? null;
  const key = await keyColumns(client, change.source, change.sourceKey);
  const sql = new BatchSql(change, key, await keyColumns(client, change.target, change.targetKey));
  const estimatedTotal = opts.estimatedTotal ?? (await estimateRows(client, change.source));
  const cancelled = () => Boolean(opts.isCancelled?.() || opts.signal?.aborted);

  let throttle = mergeThrottle(defaultThrottle, opts.throttle);
  let lastControlPoll = 0;
  const pollControl = async (force = false) => {
    if (!opts.getControl) return;
    const now = Date.now();
    if (!force && now - lastControlPoll < (opts.controlPollMs ?? 500)) return;
    lastControlPoll = now;
    throttle = mergeThrottle(throttle, await opts.getControl());
  };

  const resume = opts.resumeFrom ?? null;
  let lastKey = resume?.lastKey ?? null;
  let rowsDone = resume?.rowsDone ?? 0;
  let batches = resume?.batches ?? 0;
  let rowsInserted = resume?.rowsInserted ?? 0;
  let rowsThisRun = 0;
  const started = Date.now();
  let curBatch = throttle.batchSize;
  let curSleep = throttle.sleepMs;
  let lastBatchMs = 0;
  // Sweep queue: copied ranges waiting for their horizon. The oldest unswept lower bound is
  // part of the checkpoint, so a killed run's unswept ranges are swept by its successor.
  const pending: { after: string[] | null; upTo: string[]; horizon: string }[] = [];
  let sweepFrom: { after: string[] | null } | null =
    ghostGuard === 'sweep' ? (resume?.sweepPending ?? null) : null;
  if (ghostGuard === 'sweep' && sweepFrom && lastKey)
    pending.push({ after: sweepFrom.after, upTo: lastKey, horizon: await currentHorizon(client) });

  const governor = opts.loadBudget?.enabled
    ? new LoadGovernor(client, opts.loadBudget, {
        isCancelled: cancelled,
        onHold: async (t) => {
          await opts.onProgress?.(progress(t.critical ? 'paused' : 'running'));
        },
      })
    : null;
  const governed = () => Boolean(governor && throttle.loadBudget && !throttle.adaptive);

  const progress = (state: BackfillProgress['state']): BackfillProgress => {
    const elapsed = (Date.now() - started) / 1000;
    const rate = elapsed > 0 ? rowsThisRun / elapsed : 0;
    const remaining = Math.max(0, estimatedTotal - rowsDone);
    return {
      plan: change.name,
      range,
      ghostGuard,
      lastKey,
      rowsDone,
      batches,
      sweepPending: ghostGuard === 'sweep' ? sweepFrom : null,
      rowsInserted,
      estimatedTotal,
      percent: estimatedTotal > 0 ? Math.min(100, (100 * rowsDone) / estimatedTotal) : 0,
      rowsPerSecond: Math.round(rate),
      etaSeconds: state === 'done' ? 0 : rate > 0 ? Math.round(remaining / rate) : null,
      batchSize: curBatch,
      sleepMs: curSleep,
      paused: throttle.paused,
      lastBatchMs,
      throttled: governed() ? (governor!.state.reason ?? null) : null,
      loadThrottle: governed() ? governor!.state : null,
      state,
      updatedAt: new Date().toISOString(),
    };
  };

  const flushSweeps = async (all: boolean) => {
    while (pending.length) {
      // Horizons only grow, so the newest passable entry covers every older one.
      let upto = -1;
      for (let i = pending.length - 1; i >= 0; i--)
        if (await horizonPassed(client, pending[i]!.horizon)) {
          upto = i;
          break;
        }
      if (upto < 0) {
        if (!all || cancelled()) return;
        await sleep(20);
        continue;
      }
      const first = pending[0]!;
      const last = pending[upto]!;
      await sweepRange(client, sql, first.after, last.upTo, range);
      pending.splice(0, upto + 1);
      sweepFrom = pending.length ? { after: pending[0]!.after } : null;
    }
  };

  const interruptibleSleep = async (ms: number) => {
    const until = Date.now() + ms;
    while (Date.now() < until && !cancelled()) await sleep(Math.min(100, until - Date.now()));
  };

  await pollControl(true);
  curBatch = throttle.batchSize;
  curSleep = throttle.sleepMs;
  if (governed()) await governor!.start();
  for (;;) {
    if (cancelled()) break;
    await pollControl();
    if (throttle.paused) {
      await opts.onProgress?.(progress('paused'));
      await interruptibleSleep(Math.max(50, Math.min(opts.controlPollMs ?? 500, 500)));
      await pollControl(true);
      continue;
    }
    if (!throttle.adaptive) {
      // Under the load budget the operator's batch size is the ceiling and sleep the floor.
      curBatch = governed()
        ? Math.max(throttle.minBatchSize, Math.round(throttle.batchSize * governor!.batchScale))
        : throttle.batchSize;
      curSleep = throttle.sleepMs;
    }
    const t0 = performance.now();
    const after = lastKey;
    const limit = curBatch;
    let out: BatchOutcome;
    try {
      out = await retrying(() =>
        copyBatch(client, sql, after, range, limit, ghostGuard === 'lock', opts.hooks),
      );
    } catch (err) {
      // Retrying cannot change the data: find the row and stop (the caller must not retry).
      if (!isDataError(err)) throw err;
      throw new BackfillDataError(
        change,
        await findFailingRow(client, sql, after, range, limit),
        err as Error & { code: string },
      );
    }
    lastBatchMs = Math.round(performance.now() - t0);
    if (!out.lastKey) break;
    if (ghostGuard === 'sweep') {
      pending.push({ after, upTo: out.lastKey, horizon: await currentHorizon(client) });
      if (!sweepFrom) sweepFrom = { after };
    }
    lastKey = out.lastKey;
    rowsDone += out.rows;
    rowsThisRun += out.rows;
    rowsInserted += out.inserted;
    batches++;
    if (ghostGuard === 'sweep') await flushSweeps(false);
    if (throttle.adaptive) {
      // AIMD: back off hard when a batch is slow (the server is busy), recover gently.
      if (lastBatchMs > throttle.targetBatchMs) {
        curBatch = Math.max(throttle.minBatchSize, Math.floor(curBatch / 2));
        curSleep = Math.min(throttle.maxSleepMs, Math.max(curSleep * 2, 20, throttle.sleepMs));
      } else {
        curBatch = Math.min(throttle.batchSize, curBatch + Math.ceil(throttle.batchSize / 10));
        curSleep = Math.max(throttle.sleepMs, Math.floor(curSleep * 0.8));
      }
    }
    await opts.onProgress?.(progress('running'));
    // A short batch was the last one: nothing beyond it when it ran (later rows arrive via
    // the trigger).
    if (out.exhausted) break;
    // One write transaction per batch; the bound and probe reads are transactions too.
    if (governed()) await governor!.afterWork(lastBatchMs, 1, 2);
    if (curSleep > 0) await interruptibleSleep(curSleep);
  }

  if (cancelled()) {
    const p = progress('cancelled');
    await opts.onProgress?.(p);
    return { progress: p, cancelled: true };
  }
  if (ghostGuard === 'sweep') await flushSweeps(true);
  if (cancelled()) {
    const p = progress('cancelled');
    await opts.onProgress?.(p);
    return { progress: p, cancelled: true };
  }
  const p = progress('done');
  await opts.onProgress?.(p);
  return { progress: p, cancelled: false };
}
