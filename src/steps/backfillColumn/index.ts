/**
 * Step kind `backfillColumn`, I/O (library: src/expand/backfill-column.ts, throttled by
 * ./run.ts). Keyset batches of `UPDATE … WHERE key > $last`, each its own transaction, only rows
 * whose value differs; checkpoint in heartbeats; resumed by a retried attempt.
 */
import { Context } from '@temporalio/activity';
import { resolveLoadBudget, type PlanLoadBudget } from '../../backfill/load-budget';
import { assertTable, checkIdent, label, qi, qt, tableRef } from '../../expand/common';
import { validateBackfillColumn } from '../../expand/backfill-column';
import { UserError } from '../../errors';
import { withConnection } from '../../temporal/activity';
import { progressReporter } from '../../temporal/progress';
import type { ResolvedStepOf } from '../schemas';
import type { ValidateContext } from '../validate-context';
import { keysText, plannedOffenders, plannedTable, validating, type StepInput } from '../expand-io';
import { columnCheckpoint, runColumnBackfill, type ColumnBackfillProgress } from './run';

type Step = ResolvedStepOf<'backfillColumn'>;

export interface BackfillColumnInput extends StepInput<Step> {
  plan: string;
  /** The plan's `backfill.loadBudget`: the same budget as the table backfill. */
  loadBudget?: PlanLoadBudget;
}

const specOf = (s: Step) => ({ table: s.table, column: s.column, expression: s.expression });

/**
 * The column exists (or an earlier addColumn step adds it), the expression compiles into it over
 * the row as the earlier steps of the plan leave it (it may read a column an earlier step adds or
 * fills), and the step would overwrite no value that is there already: it fills NULLs or a new
 * column, so rolling back needs no copy of old values (the addColumn undo drops the column).
 */
export async function validate(step: Step, ctx: ValidateContext) {
  await validating(ctx, async () => {
    checkIdent('column', step.column);
    await assertTable(ctx.client, tableRef(step.table));
    const t = await plannedTable(ctx.client, step.table, ctx.earlier);
    if (!t.columns.has(step.column))
      throw new UserError(
        `${label(t.ref)} has no column ${step.column}: add it first (an addColumn step before this one)`,
      );
    const expr = `(${step.expression}\n)`;
    try {
      // Compiled where it will run, against the planned row. A column the table has takes the
      // value as UPDATE will (assignment cast); one an earlier step adds is not there to
      // assign to, so an explicit cast to its declared type stands in.
      await ctx.client.query(
        t.added.has(step.column)
          ? `EXPLAIN SELECT CAST(${expr} AS ${t.types.get(step.column)!}) FROM ${t.relation}`
          : `EXPLAIN UPDATE ${qt(t.ref)} SET ${qi(step.column)} = (SELECT ${expr} FROM ${t.relation} LIMIT 1) WHERE false`,
      );
      // One value per row: WHERE refuses aggregates, window and set-returning functions, as
      // the UPDATE's SET would (the subquery above does not).
      await ctx.client.query(`EXPLAIN SELECT 1 FROM ${t.relation} WHERE ${expr} IS NULL`);
    } catch (err) {
      throw new UserError(
        `expression for ${label(t.ref)}.${step.column}: ${(err as Error).message}`,
      );
    }
    if (t.added.has(step.column)) return;
    const c = qi(step.column);
    const keys = await plannedOffenders(
      ctx.client,
      t,
      `${c} IS NOT NULL AND ${c} IS DISTINCT FROM ${expr}`,
    );
    if (keys.length)
      throw new UserError(
        `${label(t.ref)}.${step.column} holds other values in rows with key ${keysText(keys)}, which the backfill would overwrite and no undo could restore: fill a new column (an addColumn step) or only NULLs (e.g. coalesce(${step.column}, …))`,
      );
  });
}

/** Heartbeat at least this often whatever a batch or a pause takes. */
const HEARTBEAT_EVERY_MS = 2000;

export async function backfillColumnRun(
  input: BackfillColumnInput,
): Promise<ColumnBackfillProgress> {
  const ctx = Context.current();
  const { step } = input;
  const resume = columnCheckpoint(ctx.info.heartbeatDetails, step);
  const report = progressReporter();
  return withConnection(input.connection, 'cutover-backfill-column', async (client) => {
    await validateBackfillColumn(client, specOf(step));
    let last: ColumnBackfillProgress | null = resume;
    const timer = setInterval(() => {
      if (last) ctx.heartbeat(last);
    }, HEARTBEAT_EVERY_MS);
    try {
      const result = await runColumnBackfill(client, step, {
        plan: input.plan,
        resumeFrom: resume,
        loadBudget: resolveLoadBudget(input.loadBudget),
        signal: ctx.cancellationSignal,
        onProgress: (p) => {
          last = p;
          ctx.heartbeat(p);
          report(
            {
              activity: 'backfillColumn',
              rowsDone: p.rowsScanned,
              total: p.estimatedTotal > 0 ? Math.max(p.estimatedTotal, p.rowsScanned) : null,
              rowsPerSecond: p.state === 'running' ? p.rowsPerSecond : 0,
              throttled: p.state === 'done' ? null : p.throttled,
            },
            p.state === 'done',
          );
        },
      });
      if (result.state === 'cancelled') await ctx.cancelled; // rejects with the CancelledFailure
      return result;
    } finally {
      clearInterval(timer);
    }
  });
}

export { backfillColumnRun as run };
