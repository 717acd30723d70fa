/**
 * The lossless-mapping pre-flight: proves, over the whole source table and before the new table
 * gets its first row, that every row maps. Per row it evaluates the `up` mapping in SELECT form
 * and checks each value against its target column: the value converted to the column type and
 * back must be unchanged (catches overflow, truncation, rounding, with or without an explicit
 * cast into a narrower type), NOT NULL columns get no NULL, and, when a `down` mapping exists,
 * down(up(row)) gives every source column back (IS NOT DISTINCT FROM) — the only way to see an
 * explicit cast that truncates silently (`s::varchar(5)`) when the type of the result is the
 * column's. An explicit narrowing cast is also compared with the same expression without its
 * type modifier, which catches it in reads-only plans too. Then every new unique index is checked
 * for duplicates among the mapped values.
 *
 * Cost is bounded like the backfill's: keyset batches (row-value comparison, no offset paging),
 * each its own short statement, with the backfill's batch size, pause and adaptive slow-down. A
 * batch that fails on a data error (a conversion that raises) is bisected by key until the
 * failing rows are single rows, so the report names their keys. A plan that declares
 * `mapping.lossy` skips the value-change and round-trip checks, never the checks for values the
 * new table would reject.
 */
import type { ClientBase } from 'pg';
import { quoteIdent, quoteQualified } from '../db/ident';
import {
  type ColumnInfo,
  findKeyIndex,
  tableColumns,
  tableOid,
  type UniqueIndexInfo,
  uniqueIndexes,
} from './catalog';
import { executeTargetDdl } from './ddl';
import type { PlanProblem } from './load';
import type { ResolvedPlan } from './resolved';
import { referencedColumns, withoutNarrowingCasts } from './sql';
import type { ResolvedChange } from './types';

/** What a target column needs of its mapped value. */
export interface PreflightColumn {
  column: string;
  expression: string;
  /** format_type of the target column and of the expression's own result. */
  targetType: string;
  exprType: string;
  notNull: boolean;
  /** `((expr)::targetType)::exprType` compiles, so the conversion can be compared with the value. */
  comparable: boolean;
  /** The expression without the modifiers of its narrowing casts, when it has such casts. */
  loose?: string;
}

export interface PreflightSpec {
  keyTypes: string[];
  up: PreflightColumn[];
  /** down mappings checked for the round trip, with the source column's type. */
  roundTrip: Array<{ column: string; expression: string; sourceType: string }>;
  /** Unique indexes of the new table whose mapped values are not unique by construction. */
  unique: Array<{ name: string; columns: string[] }>;
}

export type OffenceKind =
  'convert' | 'cast' | 'reject' | 'null' | 'roundtrip' | 'error' | 'duplicate';

export interface Offender {
  kind: OffenceKind;
  /** Source key values as text, in key order (for duplicates: the first few keys of the group). */
  keys: string[][];
  /** Target column (up checks), source column (round trip) or index name (duplicate). */
  column?: string;
  detail?: string;
}

export interface PreflightThrottle {
  batchSize: number;
  pauseMs: number;
  adaptive?: { enabled: boolean; targetBatchMs: number; minBatchSize: number; maxPauseMs: number };
}

export interface PreflightOptions {
  throttle?: Partial<PreflightThrottle>;
  /** Stop after this many offending rows (default 5): the report names the first ones. */
  maxOffenders?: number;
  /** Live throttle (the backfill's control row): pause and batch size apply here too. */
  getControl?: () => Promise<{ paused?: boolean; batchSize?: number; sleepMs?: number } | null>;
  onProgress?: (p: { rowsChecked: number; batches: number; lastKey: string[] | null }) => void;
  signal?: AbortSignal;
}

export interface PreflightReport {
  ok: boolean;
  rowsChecked: number;
  batches: number;
  offenders: Offender[];
  problems: PlanProblem[];
}

/** Errors that say nothing about the data: retried by whoever runs the pre-flight. */
function isTransient(err: unknown): boolean {
  const code = (err as { code?: string }).code;
  if (typeof code !== 'string') return true; // connection lost, not a server-side error
  return /^(08|40|53|57)/.test(code) || code === '55P03';
}

// A value longer than these columns allow makes INSERT fail, where the explicit cast used to
// compare it would truncate silently: such a value is refused, never merely "lossy".
const REJECTING_TYPES = /^(character varying|character|bit varying|bit)\(\d+\)$/;

async function compiles(client: ClientBase, sql: string): Promise<boolean> {
  await client.query('SAVEPOINT cutover_preflight');
  try {
    await client.query(sql);
    return true;
  } catch {
    return false;
  } finally {
    await client.query('ROLLBACK TO SAVEPOINT cutover_preflight');
  }
}

/**
 * Reads what the pre-flight needs from the catalog; runs inside the caller's transaction (it
 * probes casts under savepoints). `targetColumns`/`targetUnique` describe the new table.
 */
export async function preflightSpec(
  client: ClientBase,
  change: ResolvedChange,
  catalog: {
    sourceColumns: ColumnInfo[];
    sourceUnique: UniqueIndexInfo[];
    targetColumns: ColumnInfo[];
    targetUnique: UniqueIndexInfo[];
  },
): Promise<PreflightSpec> {
  const src = quoteQualified(change.source.schema, change.source.table);
  const targetType = new Map(catalog.targetColumns.map((c) => [c.name, c]));
  const sourceType = new Map(catalog.sourceColumns.map((c) => [c.name, c]));
  // The expressions' own types, typmod included (`s::varchar(5)` is varchar(5), not varchar).
  const r = await client.query(
    `SELECT ${change.up.map((m, i) => `(${m.expression}\n) AS c${i}`).join(', ')} FROM ${src} AS src_row LIMIT 0`,
  );
  const formatted = await client.query<{ t: string }>(
    `SELECT format_type(t, m) AS t FROM unnest($1::oid[], $2::int[]) WITH ORDINALITY AS x(t, m, o) ORDER BY o`,
    [r.fields.map((f) => f.dataTypeID), r.fields.map((f) => f.dataTypeModifier)],
  );
  const up: PreflightColumn[] = [];
  for (const [i, m] of change.up.entries()) {
    const col = targetType.get(m.column)!;
    const exprType = formatted.rows[i]!.t;
    const comparable =
      exprType === col.type ||
      (await compiles(
        client,
        `SELECT ((${m.expression}\n)::${col.type})::${exprType} IS DISTINCT FROM (${m.expression}\n) FROM ${src} AS src_row LIMIT 0`,
      ));
    const loose = withoutNarrowingCasts(m.expression);
    const looseOk =
      loose !== null &&
      (await compiles(
        client,
        `SELECT (${m.expression}\n) IS DISTINCT FROM (${loose}\n) FROM ${src} AS src_row LIMIT 0`,
      ));
    up.push({
      column: m.column,
      expression: m.expression,
      targetType: col.type,
      exprType,
      notNull: col.notNull,
      comparable,
      ...(looseOk ? { loose: loose! } : {}),
    });
  }
  const written = new Set(change.up.map((m) => m.column));
  // A down expression reading a column the copy does not write (a default, a generated column)
  // cannot be evaluated over up(row) alone; those columns are compared by verification only.
  const roundTrip = (change.down ?? [])
    .filter((d) => [...referencedColumns(d.expression)].every((c) => written.has(c)))
    .map((d) => ({
      column: d.column,
      expression: d.expression,
      sourceType: sourceType.get(d.column)!.type,
    }));
  const keyIndex = findKeyIndex(catalog.targetUnique, change.targetKey);
  const byName = new Map(change.up.map((m) => [m.column, m.expression]));
  const unique = catalog.targetUnique
    .filter((ix) => ix !== keyIndex && ix.valid && !ix.partial)
    .filter((ix) => ix.columns.every((c) => c !== null && written.has(c)))
    .map((ix) => ({ name: ix.name, columns: ix.columns as string[] }))
    // Columns copied unchanged that are already unique in the source stay unique.
    .filter(
      (ix) =>
        !(
          ix.columns.every((c) => byName.get(c) === quoteIdent(c)) &&
          findKeyIndex(catalog.sourceUnique, ix.columns)
        ),
    );
  const keyTypes = change.sourceKey.map((k) => sourceType.get(k)!.type);
  return { keyTypes, up, roundTrip, unique };
}

interface Check {
  kind: OffenceKind;
  column: string;
  /** Boolean SQL over src_row (source row), u (mapped values) and t (typed mapped values). */
  sql: string;
  needsRoundTrip: boolean;
}

function rowChecks(change: ResolvedChange, spec: PreflightSpec): Check[] {
  const out: Check[] = [];
  const lossy = change.lossy !== undefined;
  for (const [i, c] of spec.up.entries()) {
    const v = `u.c${i}`;
    if (c.exprType !== c.targetType) {
      const rejects = REJECTING_TYPES.test(c.targetType);
      if (c.comparable && (rejects || !lossy))
        out.push({
          kind: rejects ? 'reject' : 'convert',
          column: c.column,
          sql: `((${v})::${c.targetType})::${c.exprType} IS DISTINCT FROM ${v}`,
          needsRoundTrip: false,
        });
      else
        out.push({
          // Only evaluates the conversion, so one that raises (overflow) is found by key.
          kind: 'error',
          column: c.column,
          sql: `((${v})::${c.targetType}) IS NULL AND ${v} IS NOT NULL`,
          needsRoundTrip: false,
        });
    }
    if (c.loose !== undefined && !lossy)
      out.push({
        kind: 'cast',
        column: c.column,
        sql: `${v} IS DISTINCT FROM u.l${i}`,
        needsRoundTrip: false,
      });
    if (c.notNull)
      out.push({ kind: 'null', column: c.column, sql: `${v} IS NULL`, needsRoundTrip: false });
  }
  if (!lossy)
    for (const [i, d] of spec.roundTrip.entries())
      out.push({
        kind: 'roundtrip',
        column: d.column,
        sql: `rt.r${i} IS DISTINCT FROM src_row.${quoteIdent(d.column)}`,
        needsRoundTrip: true,
      });
  return out;
}

function keyText(keyCols: string[], values: string[]): string {
  return `(${keyCols.join(', ')})=(${values.join(', ')})`;
}

/**
 * Runs the pre-flight over the whole source table. Read-only; every statement is a single
 * autocommit SELECT, so nothing holds a snapshot across batches.
 */
export async function runPreflight(
  client: ClientBase,
  change: ResolvedChange,
  spec: PreflightSpec,
  options: PreflightOptions = {},
): Promise<PreflightReport> {
  const maxOffenders = options.maxOffenders ?? 5;
  const src = quoteQualified(change.source.schema, change.source.table);
  const keyCols = change.sourceKey.map((k) => `src_row.${quoteIdent(k)}`);
  const keyList = keyCols.join(', ');
  const keyArray = `ARRAY[${keyCols.map((k) => `${k}::text`).join(', ')}]`;
  const checks = rowChecks(change, spec);
  const bind = (params: unknown[], values: string[]) =>
    values
      .map((v, i) => {
        params.push(v);
        return `$${params.length}::${spec.keyTypes[i]}`;
      })
      .join(', ');
  const rangeWhere = (params: unknown[], after: string[] | null, hi: string[]) =>
    [
      ...(after ? [`(${keyList}) > (${bind(params, after)})`] : []),
      `(${keyList}) <= (${bind(params, hi)})`,
    ].join(' AND ');

  const upLateral = `CROSS JOIN LATERAL (SELECT ${spec.up
    .flatMap((c, i) => [
      `(${c.expression}\n) AS c${i}`,
      ...(c.loose !== undefined ? [`(${c.loose}\n) AS l${i}`] : []),
    ])
    .join(', ')}) AS u`;
  // down over the typed mapped row, in its own scope so its column names mean target columns.
  const rtLateral =
    spec.roundTrip.length === 0
      ? ''
      : `CROSS JOIN LATERAL (SELECT ${spec.roundTrip.map((d, i) => `((${d.expression}\n)::${d.sourceType}) AS r${i}`).join(', ')}
           FROM (SELECT ${spec.up.map((c, i) => `(u.c${i})::${c.targetType} AS ${quoteIdent(c.column)}`).join(', ')}) AS t) AS rt`;

  const checkQuery = (which: Check[], params: unknown[], where: string, limit: number) =>
    `SELECT k, f FROM (
       SELECT ${keyList}, ${keyArray} AS k, ARRAY[${which.map((c) => `(${c.sql})`).join(', ')}]::boolean[] AS f
         FROM ${src} AS src_row ${upLateral} ${which.some((c) => c.needsRoundTrip) ? rtLateral : ''}
        WHERE ${where}) AS x
      WHERE true = ANY(f) ORDER BY ${change.sourceKey.map(quoteIdent).join(', ')} LIMIT ${limit}`;

  const offenders: Offender[] = [];
  const room = () => maxOffenders - offenders.length;
  const record = (rows: Array<{ k: string[]; f: boolean[] }>, which: Check[]) => {
    for (const row of rows) {
      if (room() <= 0) return;
      const failing = which.filter((_, i) => row.f[i]);
      for (const c of failing) offenders.push({ kind: c.kind, column: c.column, keys: [row.k] });
    }
  };

  /** Which check raises on this one row, for the report. */
  const explainRowError = async (key: string[], err: Error): Promise<Offender> => {
    for (const c of checks) {
      const params: unknown[] = [];
      try {
        await client.query(checkQuery([c], params, rangeWhere(params, null, key), 1), params);
      } catch (e) {
        if (isTransient(e)) throw e;
        return { kind: 'error', column: c.column, keys: [key], detail: describeError(e) };
      }
    }
    return { kind: 'error', keys: [key], detail: describeError(err) };
  };

  const keysIn = async (after: string[] | null, hi: string[]): Promise<string[][]> => {
    const params: unknown[] = [];
    const r = await client.query<{ k: string[] }>(
      `SELECT ${keyArray} AS k FROM ${src} AS src_row WHERE ${rangeWhere(params, after, hi)} ORDER BY ${keyList}`,
      params,
    );
    return r.rows.map((x) => x.k);
  };

  /** Checks (after, hi]; on a data error splits the range by key until single rows remain. */
  const scan = async (after: string[] | null, hi: string[], known?: string[][]): Promise<void> => {
    if (room() <= 0 || checks.length === 0) return;
    const params: unknown[] = [];
    try {
      const r = await client.query<{ k: string[]; f: boolean[] }>(
        checkQuery(checks, params, rangeWhere(params, after, hi), room()),
        params,
      );
      record(r.rows, checks);
    } catch (err) {
      if (isTransient(err)) throw err;
      const keys = known ?? (await keysIn(after, hi));
      if (keys.length === 0) throw err;
      if (keys.length === 1) {
        offenders.push(await explainRowError(keys[0]!, err as Error));
        return;
      }
      const mid = Math.floor(keys.length / 2);
      await scan(after, keys[mid - 1]!, keys.slice(0, mid));
      await scan(keys[mid - 1]!, hi, keys.slice(mid));
    }
  };

  const t = options.throttle ?? {};
  const maxBatch = t.batchSize ?? 10_000;
  const adaptive = t.adaptive?.enabled ? t.adaptive : undefined;
  let batchSize = maxBatch;
  let pauseMs = t.pauseMs ?? 0;
  let after: string[] | null = null;
  let rowsChecked = 0;
  let batches = 0;
  const sleep = (ms: number) => new Promise((res) => setTimeout(res, ms));
  // Nothing can fail row by row (same types, nullable columns, lossy declared): skip the scan.
  while (room() > 0 && checks.length > 0) {
    if (options.signal?.aborted) throw options.signal.reason;
    const control = await options.getControl?.();
    if (control?.paused) {
      await sleep(500);
      continue;
    }
    const limit = control?.batchSize ?? batchSize;
    const t0 = performance.now();
    const params: unknown[] = [];
    const head: { rows: Array<{ k: string[]; n: string }> } = await client.query(
      `SELECT k, n FROM (
         SELECT ${keyList}, ${keyArray} AS k, count(*) OVER () AS n FROM ${src} AS src_row
          ${after ? `WHERE (${keyList}) > (${bind(params, after)})` : ''}
          ORDER BY ${keyList} LIMIT ${limit}) AS b
        ORDER BY ${change.sourceKey.map((k) => `${quoteIdent(k)} DESC`).join(', ')} LIMIT 1`,
      params,
    );
    const hi: { k: string[]; n: string } | undefined = head.rows[0];
    if (!hi) break;
    await scan(after, hi.k);
    after = hi.k;
    rowsChecked += Number(hi.n);
    batches++;
    options.onProgress?.({ rowsChecked, batches, lastKey: after });
    if (Number(hi.n) < limit) break;
    if (adaptive) {
      // The backfill's AIMD: a slow batch means a busy server; halve and pause longer.
      if (performance.now() - t0 > adaptive.targetBatchMs) {
        batchSize = Math.max(adaptive.minBatchSize, Math.floor(batchSize / 2));
        pauseMs = Math.min(adaptive.maxPauseMs, Math.max(pauseMs * 2, 20));
      } else {
        batchSize = Math.min(maxBatch, batchSize + Math.ceil(maxBatch / 10));
        pauseMs = Math.max(t.pauseMs ?? 0, Math.floor(pauseMs * 0.8));
      }
    }
    const wait = control?.sleepMs ?? pauseMs;
    if (wait > 0) await sleep(wait);
  }

  if (room() > 0) {
    for (const ix of spec.unique) {
      if (room() <= 0) break;
      const cols = ix.columns.map((c) => spec.up.findIndex((u) => u.column === c));
      const dup = await client.query<{ v: string[]; keys: string[] }>(
        `SELECT ARRAY[${cols.map((i) => `u${i}::text`).join(', ')}] AS v, (array_agg(k ORDER BY ${change.sourceKey.map((_, i) => `k${i}`).join(', ')}))[1:3] AS keys
           FROM (SELECT ${change.sourceKey.map((k, i) => `src_row.${quoteIdent(k)} AS k${i}`).join(', ')},
                        json_build_array(${keyCols.map((k) => `${k}::text`).join(', ')})::text AS k,
                        ${cols.map((i) => `(${spec.up[i]!.expression}\n)::${spec.up[i]!.targetType} AS u${i}`).join(', ')}
                   FROM ${src} AS src_row) AS d
          WHERE ${cols.map((i) => `u${i} IS NOT NULL`).join(' AND ')}
          GROUP BY ${cols.map((i) => `u${i}`).join(', ')} HAVING count(*) > 1 LIMIT ${room()}`,
      );
      for (const row of dup.rows)
        offenders.push({
          kind: 'duplicate',
          column: ix.name,
          keys: row.keys.map((k) => JSON.parse(k) as string[]),
          detail: `(${ix.columns.join(', ')})=(${row.v.join(', ')})`,
        });
    }
  }
  return {
    ok: offenders.length === 0,
    rowsChecked,
    batches,
    offenders,
    problems: describeOffenders(change, spec, offenders),
  };
}

function describeError(err: unknown): string {
  const e = err as { message?: string; code?: string };
  return `${e.message ?? String(err)}${e.code ? ` (SQLSTATE ${e.code})` : ''}`;
}

/** Groups offenders by what is wrong and says what to change. */
export function describeOffenders(
  change: ResolvedChange,
  spec: PreflightSpec,
  offenders: Offender[],
): PlanProblem[] {
  const groups = new Map<string, Offender[]>();
  for (const o of offenders) {
    const id = `${o.kind}\u0000${o.column ?? ''}\u0000${o.kind === 'error' ? (o.detail ?? '') : ''}`;
    groups.set(id, [...(groups.get(id) ?? []), o]);
  }
  const keysOf = (list: Offender[]) =>
    list
      .flatMap((o) => o.keys)
      .map((k) => keyText(change.sourceKey, k))
      .join('; ');
  const typeOf = (col?: string) => spec.up.find((u) => u.column === col)?.targetType ?? '?';
  const accept = 'or declare the loss acceptable with mapping.lossy: <reason>';
  const out: PlanProblem[] = [];
  for (const list of groups.values()) {
    const o = list[0]!;
    const col = o.column ?? '';
    const rows = `${keysOf(list)}`;
    switch (o.kind) {
      case 'reject':
        out.push({
          path: `mapping.up.${col}`,
          message: `value does not fit target column "${col}" (${typeOf(col)}): the new table would refuse it (too long), at ${rows}: widen the column in the new table, or change mapping.up.${col} (e.g. left(…, n) with mapping.lossy), or fix those rows`,
        });
        break;
      case 'convert':
        out.push({
          path: `mapping.up.${col}`,
          message: `converting to target column "${col}" (${typeOf(col)}) changes the value (truncated, rounded or out of precision) at ${rows}: widen the column in the new table, change mapping.up.${col}, fix those rows, ${accept}`,
        });
        break;
      case 'cast':
        out.push({
          path: `mapping.up.${col}`,
          message: `a cast in mapping.up.${col} changes the value (truncated or rounded, silently) at ${rows}: widen the cast and the column, fix those rows, ${accept}`,
        });
        break;
      case 'null':
        out.push({
          path: `mapping.up.${col}`,
          message: `target column "${col}" is NOT NULL but the mapping gives NULL at ${rows}: map NULL to a value (e.g. coalesce(…)), allow NULL in the new table, or fix those rows`,
        });
        break;
      case 'roundtrip':
        out.push({
          path: `mapping.down.${col}`,
          message: `down(up(row)) does not give back source column "${col}" at ${rows}: the copy loses data (e.g. a cast in mapping.up that truncates, or a down expression that is not the inverse of up): fix mapping.up / mapping.down, ${accept}`,
        });
        break;
      case 'error':
        out.push({
          path: col ? `mapping.up.${col}` : 'mapping.up',
          message: `the mapping fails on ${rows}: ${o.detail}: change the mapping or the new column's type (e.g. a wider type) so every row fits, or fix those rows`,
        });
        break;
      case 'duplicate':
        out.push({
          path: 'target',
          message: `unique index "${col}" of the new table would get duplicate values: ${list.map((d) => `${d.detail} at ${d.keys.map((k) => keyText(change.sourceKey, k)).join(', ')}`).join('; ')}: drop or widen the unique index, change the mapping, or fix those rows`,
        });
        break;
    }
  }
  return out;
}

/**
 * The pre-flight of a resolved plan, as the run does it before its first write: the new table's
 * catalog is read from the table when it exists, else from its DDL run in a transaction that is
 * rolled back (nothing is left behind), then the table is scanned outside any transaction.
 */
export async function preflightPlan(
  client: ClientBase,
  plan: ResolvedPlan,
  options: PreflightOptions & { lockTimeoutMs?: number } = {},
): Promise<PreflightReport> {
  const change = plan.change;
  await client.query('BEGIN');
  let spec: PreflightSpec;
  try {
    await client.query(`SELECT set_config('lock_timeout', $1, true)`, [
      `${options.lockTimeoutMs ?? 2000}ms`,
    ]);
    const sourceOid = await tableOid(client, change.source);
    if (sourceOid === null)
      throw new Error(`table ${change.source.schema}.${change.source.table} does not exist`);
    let targetOid = await tableOid(client, change.target);
    if (targetOid === null) {
      await executeTargetDdl(client, change.target.schema, plan.targetDdl);
      targetOid = (await tableOid(client, change.target))!;
    }
    spec = await preflightSpec(client, change, {
      sourceColumns: await tableColumns(client, sourceOid),
      sourceUnique: await uniqueIndexes(client, sourceOid),
      targetColumns: await tableColumns(client, targetOid),
      targetUnique: await uniqueIndexes(client, targetOid),
    });
  } finally {
    await client.query('ROLLBACK');
  }
  return runPreflight(client, change, spec, {
    throttle: plan.backfill
      ? {
          batchSize: plan.backfill.batchSize,
          pauseMs: plan.backfill.pauseMs,
          adaptive: plan.backfill.adaptive,
        }
      : undefined,
    ...options,
  });
}
