/**
 * Step kind `createIndex`, I/O (library: src/expand/create-index.ts): CREATE INDEX CONCURRENTLY,
 * an INVALID leftover of an earlier failure dropped first. A unique index is proven up front on
 * the table as the earlier steps will leave it, naming the first duplicated keys.
 */
import { columnInfo, label, qi, tableRef } from '../../expand/common';
import { runCreateIndex, undoCreateIndex, validateCreateIndex } from '../../expand/create-index';
import { UserError } from '../../errors';
import type { ResolvedStepOf } from '../schemas';
import type { ValidateContext } from '../validate-context';
import {
  expandActivity,
  forget,
  owns,
  plannedTable,
  record,
  validating,
  type StepInput,
} from '../expand-io';

type Step = ResolvedStepOf<'createIndex'>;
export type CreateIndexInput = StepInput<Step> & { plan: string };

const specOf = (s: Step) => ({
  table: s.table,
  name: s.index,
  columns: s.columns,
  unique: s.unique,
});

export async function validate(step: Step, ctx: ValidateContext) {
  await validating(ctx, async () => {
    const t = await plannedTable(ctx.client, step.table, ctx.earlier);
    const planned = step.columns.filter((c) => t.added.has(c) || t.filled.has(c));
    for (const c of step.columns)
      if (!t.columns.has(c)) throw new UserError(`${label(t.ref)} has no column ${c}`);
    if (!planned.length) return validateCreateIndex(ctx.client, specOf(step));
    if (!step.unique) return;
    // Duplicates among the values the earlier steps will write.
    const cols = step.columns.map(qi).join(', ');
    const dup = await ctx.client.query<{ k: string; cnt: number }>(
      `SELECT ROW(${cols})::text AS k, count(*)::int AS cnt FROM ${t.relation}
        WHERE ${step.columns.map((c) => `${qi(c)} IS NOT NULL`).join(' AND ')}
        GROUP BY ${cols} HAVING count(*) > 1 ORDER BY count(*) DESC, ${cols} LIMIT 5`,
    );
    if (dup.rows.length)
      throw new UserError(
        `${label(t.ref)} would have duplicates under the new unique index ${step.index}: ${dup.rows.map((d) => `${d.k} (${d.cnt} rows)`).join(', ')}; remove them first`,
      );
  });
}

export async function createIndexRun(input: CreateIndexInput): Promise<{ built: boolean }> {
  const { step } = input;
  const ref = { plan: input.plan, step: step.id };
  return expandActivity(input.connection, 'createIndex', async (client, opts) => {
    const t = tableRef(step.table);
    const state = await client.query<{ valid: boolean }>(
      `SELECT i.indisvalid AS valid FROM pg_index i WHERE i.indexrelid = to_regclass($1)`,
      [`${qi(t.schema)}.${qi(step.index)}`],
    );
    if (state.rows[0]?.valid && !(await owns(client, ref))) return { built: false };
    for (const c of step.columns)
      if (!(await columnInfo(client, t, c))) throw new UserError(`${label(t)} has no column ${c}`);
    await validateCreateIndex(client, specOf(step));
    // CONCURRENTLY cannot run in a transaction: recorded first, so an undo finds a build that
    // a crash interrupted (or its INVALID leftover) and drops it.
    await record(client, ref, `index ${step.index}`);
    await runCreateIndex(client, specOf(step), opts);
    return { built: true };
  });
}

export async function createIndexUndo(input: CreateIndexInput): Promise<void> {
  const ref = { plan: input.plan, step: input.step.id };
  await expandActivity(input.connection, 'createIndex', async (client, opts) => {
    if (!(await owns(client, ref))) return;
    await undoCreateIndex(client, specOf(input.step), opts);
    await forget(client, ref);
  });
}

export { createIndexRun as run, createIndexUndo as undo };
