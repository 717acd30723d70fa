import type pg from 'pg';
import { quoteIdent, quoteQualified } from '../db/ident';
import type { ResolvedChange } from '../plan/types';
import { estimateRows, type KeyRange } from './core';

export interface PlannedRange {
  range: KeyRange;
  estimatedRows: number;
}

/**
 * Splits the key space into up to `parts` ranges of about equal row count, by percentiles of
 * the first key column over a sample (TABLESAMPLE SYSTEM on big tables, so it stays cheap).
 * Fewer ranges come back when the first column has few distinct values.
 */
export async function splitKeyRanges(
  client: pg.ClientBase,
  change: ResolvedChange,
  parts: number,
): Promise<PlannedRange[]> {
  const total = await estimateRows(client, change.source);
  if (parts <= 1 || total === 0)
    return [{ range: { after: null, upTo: null }, estimatedRows: total }];
  const first = quoteIdent(change.sourceKey[0]!);
  const src = quoteQualified(change.source.schema, change.source.table);
  const samplePct = Math.min(100, (100 * 200_000) / Math.max(total, 1));
  const sample = samplePct >= 100 ? '' : `TABLESAMPLE SYSTEM (${samplePct.toFixed(4)})`;
  const fractions = Array.from({ length: parts - 1 }, (_, i) => (i + 1) / parts);
  const r = await client.query<{ b: string[] | null }>(
    `SELECT (percentile_disc($1::float8[]) WITHIN GROUP (ORDER BY ${first}))::text[] AS b
       FROM ${src} ${sample}`,
    [fractions],
  );
  const bounds = [...new Set(r.rows[0]?.b ?? [])];
  const ranges: KeyRange[] = [];
  let after: string | null = null;
  for (const b of bounds) {
    ranges.push({ after, upTo: b });
    after = b;
  }
  ranges.push({ after, upTo: null });
  return ranges.map((range) => ({ range, estimatedRows: Math.round(total / ranges.length) }));
}
