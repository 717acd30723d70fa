/**
 * Step kinds `verify` and `sqlcheck`: exact, chunked comparison of the old and new tables.
 *
 * The key space is walked in keyset chunks of the SOURCE table (no offset paging). For each chunk one
 * REPEATABLE READ, READ ONLY transaction reads both tables from the same snapshot, so writes that
 * the sync triggers apply concurrently can never make the two sides disagree: each side yields its
 * row count and the md5 of its rows' text in key order — the source side with the plan's `up`
 * mapping applied and cast to the target column types, the target side the same target columns;
 * with a `down` mapping (unless the plan declares the mapping lossy) also the source columns on
 * one side and `down` over the target row on the other, so a value lost in the copy shows.
 * Chunk ranges are half-open (after, upTo] and cover the whole key space (the first chunk starts
 * at -∞, the last ends at +∞), so target rows outside the source's key range are caught too. On a
 * mismatch the same transaction drills down row by row and names a few differing keys.
 */
import { ApplicationFailure } from '@temporalio/common';
import type { ClientBase } from 'pg';
import { quoteIdent, quoteQualified } from '../../db/ident';
import {
  activityContext,
  heartbeat,
  inTransaction,
  previousHeartbeat,
  throwIfCancelled,
  withConnection,
} from '../../temporal/activity';
import { tableColumns, tableOid } from '../../plan/catalog';
import type { SqlCheck } from '../../plan/schema';
import type { ResolvedChange } from '../../plan/types';
import type { KeyRange } from '../../backfill/core';
import {
  LoadGovernor,
  resolveLoadBudget,
  type LoadBudget,
  type PlanLoadBudget,
} from '../../backfill/load-budget';
import { changeAsNow } from '../../swap/swap';
import { drainSyncDebt } from '../sync/debt';
import { progressReporter } from '../../temporal/progress';

export interface VerifyOptions {
  /** Use this client instead of opening one from the change's named connection. */
  client?: ClientBase;
  /** Source rows per chunk (default 10 000). */
  chunkSize?: number;
  /** Differing keys reported per mismatched chunk (default 10). */
  maxDiffKeys?: number;
  /** Stop after this many mismatched chunks (default 5). */
  maxMismatchedChunks?: number;
  /** Exclusive lower bound (source key values as text), to verify one range of a split. */
  after?: string[] | null;
  /** Inclusive upper bound; null or absent = to the end. */
  upTo?: string[] | null;
  onProgress?: (progress: VerifyProgress) => void;
  /** Bounds on the first key column, as splitKeyRanges cuts the key space (after, upTo]. */
  keyRange?: KeyRange | null;
  /** The load budget governs the chunk pace as it does the backfill's. */
  loadBudget?: LoadBudget | null;
}

export interface KeyDifference {
  /** Key values as text, in key order (target column types). */
  key: string[];
  problem: 'missing in target' | 'extra in target' | 'different';
}

export interface ChunkMismatch {
  after: string[] | null;
  upTo: string[] | null;
  /** Human-readable range, e.g. `(id) > (1000) and (id) <= (2000)`. */
  range: string;
  sourceRows: number;
  targetRows: number;
  differences: KeyDifference[];
}

export interface VerifyProgress {
  /** Last key verified (source key values as text); the checkpoint to resume from. */
  after: string[] | null;
  chunks: number;
  sourceRows: number;
  targetRows: number;
  mismatches: ChunkMismatch[];
  /** The load budget's reason for holding back, when it does. */
  throttled?: string | null;
}

export interface VerifyResult extends VerifyProgress {
  ok: boolean;
}

interface ChunkSql {
  source: string;
  target: string;
  drillSource: string;
  drillTarget: string;
}

/** Builds the per-chunk queries once. $1.. are the bounds, the last parameter the limit. */
async function chunkQueries(
  client: ClientBase,
  change: ResolvedChange,
): Promise<(after: boolean, upTo: boolean, range?: { lo: boolean; hi: boolean }) => ChunkSql> {
  const targetOid = await tableOid(client, change.target);
  const sourceOid = await tableOid(client, change.source);
  if (targetOid === null || sourceOid === null) {
    const missing = sourceOid === null ? change.source : change.target;
    throw ApplicationFailure.nonRetryable(
      `cannot verify: table ${missing.schema}.${missing.table} does not exist`,
      'VerifyTableMissing',
    );
  }
  const types = new Map((await tableColumns(client, targetOid)).map((c) => [c.name, c.type]));
  const typeOf = (col: string) => {
    const t = types.get(col);
    if (!t)
      throw ApplicationFailure.nonRetryable(
        `cannot verify: column "${col}" is missing from ${change.target.schema}.${change.target.table}`,
        'VerifyColumnMissing',
      );
    return t;
  };
  const src = quoteQualified(change.source.schema, change.source.table);
  const tgt = quoteQualified(change.target.schema, change.target.table);
  const sKeys = change.sourceKey.map(quoteIdent).join(', ');
  const tKeys = change.targetKey.map(quoteIdent).join(', ');
  const sKeysDesc = change.sourceKey.map((k) => `${quoteIdent(k)} DESC`).join(', ');
  // The round trip: with a down mapping (not declared lossy) each target row mapped back must
  // equal its source row too, or a copy that is exact under `up` but lost data (a truncating
  // cast) would verify as good.
  const sourceTypes = new Map((await tableColumns(client, sourceOid)).map((c) => [c.name, c.type]));
  const back = change.lossy === undefined ? (change.down ?? []) : [];
  const srcRow = `ROW(${[
    ...change.up.map((m) => `(${m.expression}\n)::${typeOf(m.column)}`),
    ...back.map((d) => quoteIdent(d.column)),
  ].join(', ')})::text`;
  const tgtRow = `ROW(${[
    ...change.up.map((m) => quoteIdent(m.column)),
    ...back.map((d) => `(${d.expression}\n)::${sourceTypes.get(d.column)}`),
  ].join(', ')})::text`;
  // Key text comparable across sides: the source key cast to the target key's type.
  const srcKeyText = `ARRAY[${change.sourceKey.map((k, i) => `${quoteIdent(k)}::${typeOf(change.targetKey[i]!)}::text`).join(', ')}]`;
  const tgtKeyText = `ARRAY[${change.targetKey.map((k) => `${quoteIdent(k)}::text`).join(', ')}]`;
  const n = change.sourceKey.length;
  const params = (from: number) => Array.from({ length: n }, (_, i) => `$${from + i}`).join(', ');

  // A key range of a split verification bounds the FIRST key column (as splitKeyRanges cuts
  // it); its bounds come last among the parameters, after the chunk bounds and the limit.
  const sFirst = quoteIdent(change.sourceKey[0]!);
  const tFirst = quoteIdent(change.targetKey[0]!);
  return (hasAfter, hasUpTo, range = { lo: false, hi: false }) => {
    // Untyped bound parameters take the column's type, so the key index still bounds the scan.
    const where = (keys: string, first: string, limited = false) => {
      const chunkParams = (hasAfter ? n : 0) + (hasUpTo ? n : 0) + (limited ? 1 : 0);
      const conds: string[] = [];
      let p = 1;
      if (hasAfter) {
        conds.push(`(${keys}) > (${params(p)})`);
        p += n;
      }
      if (hasUpTo) conds.push(`(${keys}) <= (${params(p)})`);
      let r = chunkParams + 1;
      if (range.lo) conds.push(`${first} > $${r++}`);
      if (range.hi) conds.push(`${first} <= $${r}`);
      return conds.length > 0 ? `WHERE ${conds.join(' AND ')}` : '';
    };
    const limitParam = `$${(hasAfter ? n : 0) + (hasUpTo ? n : 0) + 1}`;
    return {
      source: `WITH c AS (SELECT ${sKeys}, ${srcRow} AS r FROM ${src} ${where(sKeys, sFirst, true)} ORDER BY ${sKeys} LIMIT ${limitParam})
               SELECT count(*)::int AS n, md5(string_agg(r, E'\\n' ORDER BY ${sKeys})) AS h,
                      (SELECT ARRAY[${change.sourceKey.map((k) => `${quoteIdent(k)}::text`).join(', ')}] FROM c ORDER BY ${sKeysDesc} LIMIT 1) AS last
                 FROM c`,
      target: `SELECT count(*)::int AS n, md5(string_agg(${tgtRow}, E'\\n' ORDER BY ${tKeys})) AS h FROM ${tgt} ${where(tKeys, tFirst)}`,
      drillSource: `SELECT ${srcKeyText} AS k, md5(${srcRow}) AS h FROM ${src} ${where(sKeys, sFirst)} ORDER BY ${sKeys}`,
      drillTarget: `SELECT ${tgtKeyText} AS k, md5(${tgtRow}) AS h FROM ${tgt} ${where(tKeys, tFirst)} ORDER BY ${tKeys}`,
    };
  };
}

export function describeRange(
  keys: string[],
  after: string[] | null,
  upTo: string[] | null,
): string {
  const cols = `(${keys.join(', ')})`;
  const vals = (v: string[]) => `(${v.join(', ')})`;
  const parts: string[] = [];
  if (after) parts.push(`${cols} > ${vals(after)}`);
  if (upTo) parts.push(`${cols} <= ${vals(upTo)}`);
  return parts.length > 0 ? parts.join(' and ') : `all keys ${cols}`;
}

/** Row-level comparison of one range, both sides already read in the current snapshot. */
function differences(
  source: Array<{ k: string[]; h: string }>,
  target: Array<{ k: string[]; h: string }>,
  max: number,
): KeyDifference[] {
  const targetByKey = new Map(target.map((r) => [JSON.stringify(r.k), r.h]));
  const sourceKeys = new Set<string>();
  const out: Array<KeyDifference & { order: number }> = [];
  source.forEach((r, i) => {
    const id = JSON.stringify(r.k);
    sourceKeys.add(id);
    const h = targetByKey.get(id);
    if (h === undefined) out.push({ key: r.k, problem: 'missing in target', order: i });
    else if (h !== r.h) out.push({ key: r.k, problem: 'different', order: i });
  });
  target.forEach((r, i) => {
    if (!sourceKeys.has(JSON.stringify(r.k)))
      out.push({ key: r.k, problem: 'extra in target', order: source.length + i });
  });
  return out.slice(0, max).map(({ key, problem }) => ({ key, problem }));
}

/**
 * Compares the two tables of `change` chunk by chunk. Returns the result (ok false with the
 * mismatched chunks) rather than throwing; the activity below turns a mismatch into a failure.
 */
export async function verifyTables(
  change: ResolvedChange,
  options: VerifyOptions = {},
): Promise<VerifyResult> {
  const chunkSize = options.chunkSize ?? 10_000;
  const maxDiffKeys = options.maxDiffKeys ?? 10;
  const maxMismatched = options.maxMismatchedChunks ?? 5;
  const upTo = options.upTo ?? null;
  return withConnection(
    { connection: change.connection, client: options.client },
    'cutover-verify',
    async (client) => {
      const queries = await chunkQueries(client, change);
      const progress: VerifyProgress = {
        after: options.after ?? null,
        chunks: 0,
        sourceRows: 0,
        targetRows: 0,
        mismatches: [],
      };
      const kr = options.keyRange ?? null;
      const rangeFlags = { lo: kr?.after != null, hi: kr?.upTo != null };
      const rangeParams = [
        ...(kr?.after != null ? [kr.after] : []),
        ...(kr?.upTo != null ? [kr.upTo] : []),
      ];
      const governor = options.loadBudget?.enabled
        ? new LoadGovernor(client, options.loadBudget, {
            isCancelled: () => Boolean(activityContext()?.cancellationSignal.aborted),
            onHold: (t) => heartbeat({ ...progress, throttled: t.reason }),
          })
        : null;
      await governor?.start();
      for (;;) {
        throwIfCancelled();
        const after = progress.after;
        const limit = governor
          ? Math.max(Math.min(500, chunkSize), Math.round(chunkSize * governor.batchScale))
          : chunkSize;
        const t0 = performance.now();
        const done = await inTransaction(
          client,
          async () => {
            const head = queries(after !== null, upTo !== null, rangeFlags);
            const bounds = [...(after ?? []), ...(upTo ?? [])];
            const s = await client.query<{ n: number; h: string | null; last: string[] | null }>(
              head.source,
              [...bounds, limit, ...rangeParams],
            );
            const src = s.rows[0]!;
            const full = src.n === limit;
            const chunkEnd = full ? src.last : upTo;
            const q = queries(after !== null, chunkEnd !== null, rangeFlags);
            const chunkBounds = [...(after ?? []), ...(chunkEnd ?? []), ...rangeParams];
            const t = await client.query<{ n: number; h: string | null }>(q.target, chunkBounds);
            const tgt = t.rows[0]!;
            progress.chunks++;
            progress.sourceRows += src.n;
            progress.targetRows += tgt.n;
            if (src.n !== tgt.n || src.h !== tgt.h) {
              const [ds, dt] = [
                await client.query<{ k: string[]; h: string }>(q.drillSource, chunkBounds),
                await client.query<{ k: string[]; h: string }>(q.drillTarget, chunkBounds),
              ];
              progress.mismatches.push({
                after,
                upTo: chunkEnd,
                range: describeRange(change.sourceKey, after, chunkEnd),
                sourceRows: src.n,
                targetRows: tgt.n,
                differences: differences(ds.rows, dt.rows, maxDiffKeys),
              });
            }
            progress.after = chunkEnd;
            return !full;
          },
          { mode: 'ISOLATION LEVEL REPEATABLE READ READ ONLY' },
        );
        if (governor) progress.throttled = governor.state.reason;
        heartbeat(progress);
        options.onProgress?.(progress);
        if (done || progress.mismatches.length >= maxMismatched) break;
        // One read-only transaction of three statements per chunk.
        await governor?.afterWork(performance.now() - t0, 0, 3);
      }
      return { ok: progress.mismatches.length === 0, ...progress };
    },
  );
}

/** One line per mismatched chunk, naming its range and differing keys. */
export function describeMismatches(change: ResolvedChange, result: VerifyResult): string {
  const lines = result.mismatches.map((m) => {
    const keys = m.differences
      .map((d) => `${change.targetKey.map((k, i) => `${k}=${d.key[i]}`).join(',')} (${d.problem})`)
      .join('; ');
    return `  ${m.range}: source ${m.sourceRows} rows, target ${m.targetRows} rows${keys ? `; differing keys: ${keys}` : ''}`;
  });
  const t = change.target;
  return `verification of ${change.source.schema}.${change.source.table} → ${t.schema}.${t.table} failed: ${result.mismatches.length} chunk(s) differ${result.mismatches.length >= 5 ? ' (stopped looking)' : ''}:\n${lines.join('\n')}`;
}

export interface VerifyInput {
  change: ResolvedChange;
  verify?: { chunkSize?: number; maxDiffKeys?: number };
  /** One key range of a split verification. */
  range?: { after: string[] | null; upTo: string[] | null };
  /** One of splitKeyRanges' ranges (first key column) when several activities share the table. */
  keyRange?: KeyRange | null;
  loadBudget?: PlanLoadBudget;
}

/** As backfillRun's: the kind's 8 s heartbeat timeout (spec.ts) counts on it. */
const HEARTBEAT_EVERY_MS = 2000;

/**
 * The `verify` activity: resumes from its last heartbeat (the last verified key, counts and
 * mismatches so far) and fails non-retryably on any mismatch.
 */
export async function verify(input: VerifyInput): Promise<VerifyResult> {
  const resumed = previousHeartbeat<VerifyProgress>();
  let last: VerifyProgress | undefined = resumed;
  // The last progress is re-sent on a timer from the start (the debt drain and the load
  // budget's baseline included), so a slow chunk never looks like a dead worker and the
  // heartbeat timeout can stay short (see backfillRun).
  const timer = setInterval(() => {
    if (last) heartbeat(last);
  }, HEARTBEAT_EVERY_MS);
  const report = progressReporter();
  const startedAt = Date.now();
  let result: VerifyResult;
  let change = input.change;
  try {
    // Keys the sync triggers could not copy exactly (REPEATABLE READ writers, hot keys on both
    // sides) are settled first; verification then proves the tables equal. A verify step after
    // the swap (or rename) compares the tables under the names of the moment: the archive is
    // the old table, and the plan's name for the new one may now be a view over it.
    change = await withConnection(input.change.connection, 'cutover-verify', async (c) => {
      const now = await changeAsNow(c, input.change);
      await drainSyncDebt(c, now, { onProgress: () => heartbeat(resumed) });
      return now;
    });
    result = await verifyTables(change, {
      chunkSize: input.verify?.chunkSize,
      maxDiffKeys: input.verify?.maxDiffKeys,
      after: resumed?.after ?? input.range?.after ?? null,
      upTo: input.range?.upTo ?? null,
      keyRange: input.keyRange ?? null,
      loadBudget: resolveLoadBudget(input.loadBudget),
      onProgress: (p) => {
        last = { ...p, mismatches: [...p.mismatches] };
        const seconds = (Date.now() - startedAt) / 1000;
        report({
          activity: 'verify',
          rowsDone: (resumed?.sourceRows ?? 0) + p.sourceRows,
          total: null,
          rowsPerSecond: seconds > 0 ? Math.round(p.sourceRows / seconds) : null,
          throttled: null,
        });
      },
    });
  } finally {
    clearInterval(timer);
  }
  if (resumed) {
    result.chunks += resumed.chunks;
    result.sourceRows += resumed.sourceRows;
    result.targetRows += resumed.targetRows;
    result.mismatches = [...resumed.mismatches, ...result.mismatches];
    result.ok = result.mismatches.length === 0;
  }
  if (!result.ok)
    throw ApplicationFailure.nonRetryable(
      describeMismatches(change, result),
      'VerificationMismatch',
      result.mismatches,
    );
  return result;
}

export interface SqlCheckResult {
  name: string;
  ok: boolean;
  expected: SqlCheck['expect'];
  actual: unknown;
}

function matches(actual: unknown, expected: SqlCheck['expect']): boolean {
  if (expected === null) return actual === null;
  if (actual === null || actual === undefined) return false;
  if (typeof expected === 'number') return Number(actual) === expected;
  if (typeof expected === 'boolean')
    return actual === expected || String(actual) === String(expected);
  return String(actual) === expected;
}

/**
 * Runs user SQL checks in one READ ONLY transaction (a check cannot write) and compares the first
 * column of the first row with `expect`. Returns every result; `sqlcheck` below fails on any miss.
 */
export async function runSqlChecks(
  connection: string,
  checks: SqlCheck[],
  options: { client?: ClientBase } = {},
): Promise<SqlCheckResult[]> {
  return withConnection({ connection, client: options.client }, 'cutover-sqlcheck', (client) =>
    inTransaction(
      client,
      async () => {
        const out: SqlCheckResult[] = [];
        for (const check of checks) {
          const { rows, fields } = await client.query(check.sql);
          const first = rows[0] as Record<string, unknown> | undefined;
          const actual = first && fields[0] ? first[fields[0].name] : null;
          out.push({
            name: check.name,
            ok: matches(actual, check.expect),
            expected: check.expect,
            actual,
          });
        }
        return out;
      },
      { mode: 'READ ONLY' },
    ),
  );
}

/** The `sqlcheck` activity. */
export async function sqlcheck(input: {
  change: Pick<ResolvedChange, 'connection'>;
  checks: SqlCheck[];
}): Promise<SqlCheckResult[]> {
  const results = await runSqlChecks(input.change.connection, input.checks);
  const failed = results.filter((r) => !r.ok);
  if (failed.length > 0)
    throw ApplicationFailure.nonRetryable(
      `SQL checks failed: ${failed.map((f) => `"${f.name}" returned ${JSON.stringify(f.actual)}, expected ${JSON.stringify(f.expected)}`).join('; ')}`,
      'SqlCheckFailed',
      results,
    );
  return results;
}
