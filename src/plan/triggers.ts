import type { ClientBase } from 'pg';
import { quoteQualified } from '../db/ident';
import type { TableRef } from './types';

/** An application trigger on a table (cutover's own sync triggers left out). */
export interface TableTrigger {
  name: string;
  timing: 'BEFORE' | 'AFTER' | 'INSTEAD OF';
  level: 'row' | 'statement';
  events: Array<'INSERT' | 'UPDATE' | 'DELETE' | 'TRUNCATE'>;
  /** Schema-qualified trigger function. */
  function: string;
  enabled: boolean;
}

/**
 * The triggers `plan check` lists for the source table. Why they matter: a BEFORE row trigger
 * that modifies rows (updated_at := clock_timestamp()) also runs on rows reverse sync writes;
 * the forward sync copies the result back, so the tables stay equal, but the new table itself
 * does not carry the trigger until it is created there.
 */
export async function tableTriggers(client: ClientBase, table: TableRef): Promise<TableTrigger[]> {
  const r = await client.query<{
    name: string;
    type: number;
    fn: string;
    enabled: string;
  }>(
    `SELECT t.tgname AS name, t.tgtype::int AS type, t.tgenabled AS enabled,
            format('%I.%I', n.nspname, p.proname) AS fn
       FROM pg_trigger t
       JOIN pg_proc p ON p.oid = t.tgfoid
       JOIN pg_namespace n ON n.oid = p.pronamespace
      WHERE t.tgrelid = $1::regclass AND NOT t.tgisinternal
        AND t.tgname NOT LIKE 'cutover\\_sync\\_%'
      ORDER BY t.tgname`,
    [quoteQualified(table.schema, table.table)],
  );
  // pg_trigger.tgtype bits (src/include/catalog/pg_trigger.h).
  return r.rows.map((x) => ({
    name: x.name,
    timing: x.type & 64 ? 'INSTEAD OF' : x.type & 2 ? 'BEFORE' : 'AFTER',
    level: x.type & 1 ? 'row' : 'statement',
    events: (
      [
        [4, 'INSERT'],
        [16, 'UPDATE'],
        [8, 'DELETE'],
        [32, 'TRUNCATE'],
      ] as const
    )
      .filter(([bit]) => x.type & bit)
      .map(([, e]) => e),
    function: x.fn,
    enabled: x.enabled !== 'D',
  }));
}

/** The lines `plan check` prints for them. */
export function describeTriggers(table: TableRef, triggers: TableTrigger[]): string[] {
  const where = `${table.schema}.${table.table}`;
  if (!triggers.length) return [`  triggers   none on ${where}`];
  return [
    `  triggers   on ${where} (the new table gets none of them; recreate them there before it carries writes):`,
    ...triggers.map(
      (t) =>
        `    ${t.name}: ${t.timing} ${t.events.join(' OR ')} FOR EACH ${t.level.toUpperCase()} → ${t.function}()${t.enabled ? '' : ' (disabled)'}`,
    ),
  ];
}
