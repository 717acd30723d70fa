/**
 * Backfill: copies the source table into the target through the `up` mapping in batches, each
 * batch its own short transaction, never overwriting a row: `ON CONFLICT (key) DO NOTHING` where
 * the sync trigger has already written rows (a plain INSERT, redone with ON CONFLICT on a
 * duplicate, elsewhere), so a newer row written by the trigger always wins.
 *
 * How a batch reads the source:
 *  - page order ('ctid'): a whole-table backfill with the default 'debt' guard on PostgreSQL ≥ 14
 *             copies one range of heap pages per batch (`ctid >= '(p,0)' AND ctid < '(q,0)'`, a
 *             TID Range Scan: the sequential read of one INSERT … SELECT, cut in pieces) up to
 *             the table's size when the copy started. A rewrite of the table (VACUUM FULL,
 *             CLUSTER) moves rows to other pages: the batch that sees a new relfilenode rolls
 *             back and the copy starts over from page 0 (re-copied rows are skipped by
 *             ON CONFLICT). See copyPages for why the pages of the start are enough.
 *  - key order ('key'): everywhere else (key ranges of a split backfill, the 'lock' and 'sweep'
 *             guards, PostgreSQL 13, a plan without a TID Range Scan, checkpoints of older
 *             versions): keyset batches ordered by key (row-value comparison, no offset paging)
 *             through the primary key index.
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
import { serverVersionOf } from '../db/connect';

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

/** How the batches read the source: see the comment at the top. */
export type BackfillMode = 'key' | 'ctid';

/** Where a page-order backfill stands: pages [0, next) of relfilenode `filenode` are copied. */
export interface PageCursor {
  /** First heap page not copied yet. */
  next: number;
  /** Pages of the source when the copy (or its restart after a rewrite) began: it stops there. */
  end: number;
  /** pg_relation_filenode of the source at that moment; another one means it was rewritten. */
  filenode: string;
  /** Times a rewrite of the source made the copy start over from page 0. */
  restarts: number;
}

export interface BackfillCheckpoint {
  /**
   * Full key of the last row copied (as text, in key order), null before the first batch. Stays
   * null in page order, whose position is `pages`.
   */
  lastKey: string[] | null;
  /** Absent in checkpoints written before page order existed: they resume in key order. */
  mode?: BackfillMode;
  /** The page cursor in page order ('ctid'), null in key order. */
  pages?: PageCursor | null;
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
  mode: BackfillMode;
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
  /**
   * Called inside each batch transaction, after the batch statement, before COMMIT: in key order
   * with the batch's last key, in page order with its pages [from, to) (lastKey null).
   */
  beforeCommit?: (batch: {
    lastKey: string[] | null;
    rows: number;
    pages?: { from: number; to: number };
  }) => Promise<void>;
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
  /** Read in key order even where page order applies (side-by-side measurements, tests). */
  keyOrder?: boolean;
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

  /** Copies the source rows matching `where` (a filter, optionally with a locking clause). */
  insertWhere(where: string, onConflict: boolean): string {
    return `INSERT INTO ${this.dst} (${this.insertCols})
      SELECT ${this.insertExprs} FROM (SELECT * FROM ${this.src} WHERE ${where}) AS s${
        onConflict ? ` ON CONFLICT (${this.conflict}) DO NOTHING` : ''
      }`;
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

/** `work` in a transaction opened by `begin` (or by work's first statement when ''). */
async function inTransaction<T>(
  client: pg.ClientBase,
  begin: string,
  work: () => Promise<T>,
): Promise<T> {
  if (begin) await client.query(begin);
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
  const where = `${w2.join(' AND ')}${lock ? ' FOR KEY SHARE' : ''}`;
  const attempt = (onConflict: boolean) =>
    inTransaction(client, `BEGIN; ${sql.guardSql}`, async () => {
      const r = await client.query(sql.insertWhere(where, onConflict), p2);
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

/** First server_version_num with TID Range Scans (`ctid >= … AND ctid < …` reads only those pages). */
const TID_RANGE_SCAN_SINCE = 140000;

const tid = (page: number, offset = 0) => `'(${page},${offset})'::tid`;
const pageRange = (from: number, to: number) => `ctid >= ${tid(from)} AND ctid < ${tid(to)}`;

/**
 * The page-order batch with ON CONFLICT DO NOTHING, returning the rows it read (counted in the
 * same snapshot) and inserted: ON CONFLICT reports only the inserted ones.
 */
function pageBatchCountingSql(sql: BatchSql, from: number, to: number): string {
  return `WITH ins AS (${pageBatchSql(sql, from, to, true)} RETURNING 1)
    SELECT (SELECT count(*) FROM ins)::int AS inserted,
           (SELECT count(*) FROM ${sql.src} WHERE ${pageRange(from, to)})::int AS rows`;
}

/** The page-order batch statement: rows of pages [from, to). Block numbers are integers. */
function pageBatchSql(sql: BatchSql, from: number, to: number, onConflict: boolean): string {
  return sql.insertWhere(pageRange(from, to), onConflict);
}

interface PageBounds {
  /** Pages of the main fork now. */
  end: number;
  filenode: string;
  /** reltuples / relpages, null when the table was never analysed (or is empty). */
  rowsPerPage: number | null;
  /** The most row versions a heap page can hold (MaxHeapTuplesPerPage). */
  maxRowsPerPage: number;
}

/** Size, relfilenode and density of the source, read under one lock so they belong together. */
async function pageBounds(client: pg.ClientBase, sql: BatchSql): Promise<PageBounds> {
  return inTransaction(client, 'BEGIN', async () => {
    // ACCESS SHARE waits for a rewrite in progress and keeps one from committing meanwhile.
    await client.query(`LOCK TABLE ${sql.src} IN ACCESS SHARE MODE`);
    const r = await client.query<{
      f: string;
      n: string;
      tuples: number;
      pages: number;
      bs: number;
    }>(
      `SELECT pg_relation_filenode(c.oid)::text AS f,
              (pg_relation_size(c.oid) / current_setting('block_size')::bigint)::text AS n,
              c.reltuples::float8 AS tuples, c.relpages AS pages,
              current_setting('block_size')::int AS bs
         FROM pg_class c WHERE c.oid = $1::regclass`,
      [sql.src],
    );
    const row = r.rows[0]!;
    return {
      end: Number(row.n),
      filenode: row.f,
      rowsPerPage: row.tuples > 0 && row.pages > 0 ? row.tuples / row.pages : null,
      // Page header 24 bytes, then a 4-byte line pointer and a 24-byte tuple header per row.
      maxRowsPerPage: Math.floor((row.bs - 24) / 28),
    };
  });
}

/**
 * Page order applies to this source: PostgreSQL ≥ 14, a plain table without inheritance
 * children, and the planner reads a page range with a TID Range Scan. Checked once at the start:
 * a plan that read the whole table for every batch would make the copy quadratic.
 */
async function pageOrderFits(client: pg.ClientBase, sql: BatchSql): Promise<boolean> {
  if ((await serverVersionOf(client)).num < TID_RANGE_SCAN_SINCE) return false;
  const rel = await client.query<{ kind: string; sub: boolean }>(
    `SELECT relkind::text AS kind, relhassubclass AS sub FROM pg_class WHERE oid = $1::regclass`,
    [sql.src],
  );
  if (rel.rows[0]?.kind !== 'r' || rel.rows[0].sub) return false;
  const explained = await client.query<{ 'QUERY PLAN': unknown }>(
    `EXPLAIN (FORMAT JSON) ${pageBatchSql(sql, 0, 1, false)}`,
  );
  const scans: string[] = [];
  const walk = (node: unknown): void => {
    if (Array.isArray(node)) return node.forEach(walk);
    if (typeof node !== 'object' || node === null) return;
    const n = node as Record<string, unknown>;
    if (n['Relation Name'] === sql.change.source.table) scans.push(String(n['Node Type']));
    Object.values(n).forEach(walk);
  };
  walk(explained.rows[0]?.['QUERY PLAN']);
  return scans.length === 1 && scans[0] === 'Tid Range Scan';
}

/** Thrown inside a page batch whose source was rewritten since the cursor was taken. */
class SourceRewritten extends Error {}

interface PageOutcome {
  rows: number;
  inserted: number;
  /** The pages copied: [from, to). */
  from: number;
  to: number;
  /** Write transactions spent (2 when a duplicate made the batch run again with ON CONFLICT). */
  writes: number;
}

/**
 * One page-order batch: copies the rows of pages [cursor.next, +count) in one INSERT … SELECT
 * inside a short transaction.
 *
 * Why the pages of the start (cursor.end) are enough: the sync trigger was installed before the
 * backfill began, under a lock that waited for the writers then running, and it upserts every
 * INSERT and UPDATE into the new table. Every row version beyond the start's last page (and any
 * one created later, wherever it lands) was written by a statement that fired the trigger, so
 * its row is in the new table already; a row that moves (an UPDATE) was copied by the trigger
 * at its new place, and a batch that still sees its old version yields to the trigger's row
 * exactly as in key order (a duplicate, or the trigger's upsert waits for the batch and then
 * overwrites its copy). In copy mode the trigger records every DELETE and key change as sync
 * debt, which the drain after the backfill settles, so a row this batch read just before it
 * was deleted does not survive (the 'debt' guard). Rows written past the trigger
 * (session_replication_role = replica) can be missed here, as in key order.
 *
 * Rows the trigger wrote can be anywhere in the range, and there is no cheap probe for them as
 * in key order: the plain INSERT (the fast one) fails on such a duplicate and the batch is redone
 * with ON CONFLICT DO NOTHING, which the caller keeps for the next batches until one inserts
 * every row it read. A trigger-written row is never overwritten.
 *
 * A rewrite (VACUUM FULL, CLUSTER, a pg_repack-like swap of files) moves rows without firing
 * triggers, so page numbers of the old file mean nothing in the new one. The INSERT holds
 * ACCESS SHARE on the source until COMMIT, so no rewrite can commit between the relfilenode
 * check below and the commit, and one committed before shows there: the batch then rolls back
 * (SourceRewritten) and the caller starts over from page 0 of the new file.
 */
async function copyPages(
  client: pg.ClientBase,
  sql: BatchSql,
  cursor: PageCursor,
  count: number,
  onConflict: boolean,
  hooks?: BackfillHooks,
): Promise<PageOutcome> {
  const from = cursor.next;
  const to = Math.min(cursor.end, from + Math.max(1, count));
  const counting = pageBatchCountingSql(sql, from, to);
  const plain = pageBatchSql(sql, from, to, false);
  // BEGIN, the guard, the batch and the relfilenode in one round trip (no parameters: the
  // simple protocol runs them in order and stops at the first error). Measured: the separate
  // round trips cost about 4 % of the copy.
  const check = `SELECT pg_relation_filenode(${sqlLiteral(sql.src)}::regclass)::text AS f`;
  const attempt = (withConflict: boolean) =>
    inTransaction(client, '', async () => {
      const results = (await client.query(
        `BEGIN; ${sql.guardSql}; ${withConflict ? counting : plain}; ${check}`,
      )) as unknown as pg.QueryResult[];
      const [copied, now] = [results[2]!, results[3]!];
      const counts = withConflict
        ? (copied.rows[0] as { rows: number; inserted: number })
        : { rows: copied.rowCount ?? 0, inserted: copied.rowCount ?? 0 };
      if ((now.rows[0] as { f?: string } | undefined)?.f !== cursor.filenode)
        throw new SourceRewritten();
      if (hooks?.beforeCommit)
        await hooks.beforeCommit({ lastKey: null, rows: counts.rows, pages: { from, to } });
      return { ...counts, from, to };
    });
  if (onConflict) return { ...(await attempt(true)), writes: 1 };
  try {
    return { ...(await attempt(false)), writes: 1 };
  } catch (err) {
    if ((err as { code?: string }).code !== '23505') throw err;
    return { ...(await attempt(true)), writes: 2 };
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

/** Whether copying the source rows that match `where` fails on a data error. Rolled back. */
async function copyFails(
  client: pg.ClientBase,
  sql: BatchSql,
  where: string,
  params: unknown[],
): Promise<boolean> {
  await client.query(`BEGIN; ${sql.guardSql}`);
  try {
    await client.query(sql.insertWhere(where, true), params);
    return false;
  } catch (err) {
    if (!isDataError(err)) throw err;
    return true;
  } finally {
    await client.query('ROLLBACK');
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
    return copyFails(client, sql, where.join(' AND '), q);
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

/**
 * The key of the row that fails in pages [from, to) of a page-order batch: bisects the pages,
 * then the row versions of the one page left (by ctid), each try rolled back. O(log n) tries.
 */
async function findFailingPageRow(
  client: pg.ClientBase,
  sql: BatchSql,
  from: number,
  to: number,
): Promise<string[] | null> {
  if (!(await copyFails(client, sql, pageRange(from, to), []))) return null;
  // Invariant: pages [lo, hi) hold a failing row.
  let [lo, hi] = [from, to];
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (await copyFails(client, sql, pageRange(lo, mid), [])) hi = mid;
    else lo = mid;
  }
  const tids = (
    await client.query<{ t: string }>(
      `SELECT ctid::text AS t FROM ${sql.src} WHERE ${pageRange(lo, lo + 1)} ORDER BY ctid`,
    )
  ).rows.map((r) => r.t);
  // Invariant: the row versions tids[a..b] hold a failing row.
  const failsIn = (a: number, b: number) =>
    copyFails(client, sql, `ctid >= $1::tid AND ctid <= $2::tid`, [tids[a], tids[b]]);
  let [a, b] = [0, tids.length - 1];
  if (b < 0 || !(await failsIn(a, b))) return null;
  while (a < b) {
    const mid = Math.floor((a + b) / 2);
    if (await failsIn(a, mid)) b = mid;
    else a = mid + 1;
  }
  const row = await client.query<{ k: string[] }>(
    `SELECT ${sql.keyText} AS k FROM ${sql.src} WHERE ctid = $1::tid`,
    [tids[a]],
  );
  return row.rows[0]?.k ?? null;
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

/** A page cursor from a checkpoint, or null when it is not one. */
function validCursor(c: unknown): PageCursor | null {
  if (typeof c !== 'object' || c === null) return null;
  const p = c as Partial<PageCursor>;
  const count = (n: unknown): n is number => Number.isSafeInteger(n) && (n as number) >= 0;
  if (!count(p.next) || !count(p.end) || typeof p.filenode !== 'string') return null;
  return {
    next: p.next,
    end: p.end,
    filenode: p.filenode,
    restarts: count(p.restarts) ? p.restarts : 0,
  };
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
  let density = { base: 1, now: 1, max: 1 };
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

  // Page order where it applies (see the top of the file). A checkpoint decides on resume: one
  // of key order (or of a version before page order) goes on in key order; one of page order
  // goes on from its page, or, should page order no longer apply, in key order from the start.
  let cursor: PageCursor | null = null;
  const pagesWanted = ghostGuard === 'debt' && range === null && !opts.keyOrder;
  const resumedPages = resume?.mode === 'ctid' ? validCursor(resume.pages) : null;
  if (pagesWanted && (resume === null || resumedPages) && (await pageOrderFits(client, sql))) {
    const b = await pageBounds(client, sql);
    cursor = resumedPages ?? { next: 0, end: b.end, filenode: b.filenode, restarts: 0 };
    // Rows per page: the catalog's figure, else the row estimate over the pages, then measured.
    const base = b.rowsPerPage ?? (estimatedTotal > 0 && b.end > 0 ? estimatedTotal / b.end : 50);
    density = { base, now: base, max: b.maxRowsPerPage };
  }
  // The batch after the checkpoint may have committed before the process died: skip its rows.
  let onConflict = resumedPages !== null;

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
      mode: cursor ? 'ctid' : 'key',
      pages: cursor ? { ...cursor } : null,
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
    const limit = curBatch;
    // Whether that was the last batch, and the transactions it spent (for the load budget).
    let exhausted: boolean;
    let spent: { writes: number; reads: number };
    if (cursor) {
      if (cursor.next >= cursor.end) break;
      const at = cursor;
      // Pages for about `limit` rows: the batch size (load budget, AIMD) stays a row count.
      const count = Math.max(1, Math.round(limit / density.now));
      let out: PageOutcome;
      try {
        out = await retrying(() => copyPages(client, sql, at, count, onConflict, opts.hooks));
      } catch (err) {
        if (err instanceof SourceRewritten) {
          // Rows moved without the trigger: start over in the new file. Rows copied so far
          // are there too, skipped by ON CONFLICT; the counts go on (they count rows read).
          const b = await pageBounds(client, sql);
          cursor = { next: 0, end: b.end, filenode: b.filenode, restarts: at.restarts + 1 };
          onConflict = true;
          await opts.onProgress?.(progress('running'));
          continue;
        }
        if (!isDataError(err)) throw err;
        throw new BackfillDataError(
          change,
          await findFailingPageRow(client, sql, at.next, Math.min(at.end, at.next + count)),
          err as Error & { code: string },
        );
      }
      lastBatchMs = Math.round(performance.now() - t0);
      cursor = { ...at, next: out.to };
      rowsDone += out.rows;
      rowsThisRun += out.rows;
      rowsInserted += out.inserted;
      batches++;
      // ON CONFLICT (half the speed) after a batch that met a trigger-written row, until one
      // inserts every row it read.
      onConflict = out.inserted < out.rows;
      // Measured density, smoothed; never below a quarter of the catalog's, so a stretch of
      // empty pages cannot make the next dense batch huge.
      const observed = out.rows / Math.max(1, out.to - out.from);
      density.now = Math.min(density.max, Math.max(density.base / 4, (density.now + observed) / 2));
      exhausted = cursor.next >= cursor.end;
      spent = { writes: out.writes, reads: 0 };
    } else {
      const after = lastKey;
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
      // A short batch was the last one: nothing beyond it when it ran (later rows arrive via
      // the trigger).
      exhausted = out.exhausted;
      // One write transaction per batch; the bound and probe reads are transactions too.
      spent = { writes: 1, reads: 2 };
    }
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
    if (exhausted) break;
    if (governed()) await governor!.afterWork(lastBatchMs, spent.writes, spent.reads);
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
