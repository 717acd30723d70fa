/**
 * Populate a column on a big, busy table: keyset batches of `UPDATE … WHERE key > $last`, each
 * its own short transaction, touching only rows whose value differs (so a resumed or repeated
 * run updates nothing twice), with a checkpoint after every batch for heartbeats and resume.
 */
import type pg from 'pg';
import { UserError } from '../errors';
import { assertTable, checkIdent, columnInfo, keyColumns, label, qi, qt, tableRef } from './common';

export interface BackfillColumnSpec {
  table: string;
  column: string;
  /** SQL expression over the row's columns, e.g. lower(email) or 'default.png'. */
  expression: string;
  batchSize?: number;
  /** Pause between batches, so the application keeps the table. */
  pauseMs?: number;
}

export interface ColumnBackfillCheckpoint {
  /** Last key walked (JSON of the key values); undefined before the first batch. */
  lastKey?: unknown[];
  rowsUpdated: number;
  rowsScanned: number;
  batches: number;
}

export interface ColumnBackfillHooks {
  /** Called after every committed batch (and how long it took): heartbeat it; resume from the last one given. */
  onBatch?: (cp: ColumnBackfillCheckpoint, batchMs: number) => unknown;
  /** Rows for the next batch, when a throttle decides it (default: spec.batchSize). */
  batchSize?: () => number;
  /** Called before every batch: throw to stop (cancellation), await to throttle. */
  beforeBatch?: () => Promise<void> | void;
}

export async function validateBackfillColumn(
  client: pg.ClientBase,
  spec: BackfillColumnSpec,
): Promise<void> {
  const t = tableRef(spec.table);
  checkIdent('column', spec.column);
  await assertTable(client, t);
  if (!(await columnInfo(client, t, spec.column)))
    throw new UserError(
      `${label(t)} has no column ${spec.column}: add it first (an addColumn step)`,
    );
  await keyColumns(client, t);
  try {
    // Planning alone checks names and types without reading a row.
    await client.query(
      `EXPLAIN UPDATE ${qt(t)} SET ${qi(spec.column)} = (${spec.expression}) WHERE false`,
    );
  } catch (err) {
    throw new UserError(`expression for ${label(t)}.${spec.column}: ${(err as Error).message}`);
  }
}

export async function runBackfillColumn(
  client: pg.ClientBase,
  spec: BackfillColumnSpec,
  from: ColumnBackfillCheckpoint = { rowsUpdated: 0, rowsScanned: 0, batches: 0 },
  hooks: ColumnBackfillHooks = {},
): Promise<ColumnBackfillCheckpoint> {
  const t = tableRef(spec.table);
  const key = await keyColumns(client, t);
  const fixed = spec.batchSize ?? 1000;
  const keyList = key.map(qi).join(', ');
  const params = key.map((_, i) => `$${i + 1}`).join(', ');
  const after = key.length === 1 ? `${qi(key[0]!)} > $1` : `(${keyList}) > (${params})`;
  // The batch's keys under names of their own: an expression naming a key column (`'u' || id`)
  // must mean the updated row's column, not be ambiguous with the batch's.
  const bk = (i: number) => qi(`cutover_k${i}`);
  const join = key.map((k, i) => `t.${qi(k)} = b.${bk(i)}`).join(' AND ');
  const batchSql = (first: boolean, n: number) => `
    WITH b AS (
      SELECT ${key.map((k, i) => `${qi(k)} AS ${bk(i)}`).join(', ')} FROM ${qt(t)} ${first ? '' : `WHERE ${after}`} ORDER BY ${keyList} LIMIT ${n}
    ), u AS (
      UPDATE ${qt(t)} t SET ${qi(spec.column)} = (${spec.expression})
        FROM b WHERE ${join} AND t.${qi(spec.column)} IS DISTINCT FROM (${spec.expression})
      RETURNING 1
    )
    SELECT (SELECT count(*) FROM b)::int AS scanned, (SELECT count(*) FROM u)::int AS updated,
           (SELECT to_jsonb(ARRAY[${key.map((_, i) => `to_jsonb(b.${bk(i)})`).join(', ')}]) FROM b ORDER BY ${key.map((_, i) => `b.${bk(i)}`).join(' DESC, ')} DESC LIMIT 1) AS last`;
  const cp = { ...from };
  for (;;) {
    await hooks.beforeBatch?.();
    const n = Math.max(1, Math.round(hooks.batchSize?.() ?? fixed));
    const t0 = performance.now();
    const r = await client.query<{ scanned: number; updated: number; last: unknown[] | null }>(
      batchSql(cp.lastKey === undefined, n),
      cp.lastKey ?? [],
    );
    const row = r.rows[0]!;
    if (row.scanned === 0) return cp;
    cp.lastKey = row.last ?? cp.lastKey;
    cp.rowsScanned += row.scanned;
    cp.rowsUpdated += row.updated;
    cp.batches += 1;
    await hooks.onBatch?.({ ...cp }, Math.round(performance.now() - t0));
    if (row.scanned < n) return cp;
    if (spec.pauseMs) await new Promise((res) => setTimeout(res, spec.pauseMs));
  }
}
