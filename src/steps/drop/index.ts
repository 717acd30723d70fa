/**
 * Step kind `drop`, I/O (library: src/expand/drop.ts). The workflow asks dropCheck for the facts
 * (deprecated when, read by whom), waits out the deprecation period on a durable timer and, where
 * pg_stat_statements cannot tell whether the object is still read, for a person's confirmation
 * at a gate; dropRun checks the same facts again just before the point of no return.
 */
import { assertTable, columnInfo, label, tableRef } from '../../expand/common';
import { dropReadiness, runDrop, type DropReadiness, type DropSpec } from '../../expand/drop';
import { UserError } from '../../errors';
import type { ResolvedStepOf } from '../schemas';
import type { ValidateContext } from '../validate-context';
import { expandActivity, validating, type StepInput } from '../expand-io';

type Step = ResolvedStepOf<'drop'>;

const specOf = (s: Step): DropSpec => ({
  table: s.table,
  ...(s.column !== undefined ? { column: s.column } : {}),
});

const what = (s: Step) =>
  s.column !== undefined ? `column ${s.table}.${s.column}` : `table ${s.table}`;

/** Exists, deprecated (or by an earlier step of this plan), and not seen being read. */
export async function validate(step: Step, ctx: ValidateContext) {
  await validating(ctx, async () => {
    const t = tableRef(step.table);
    await assertTable(ctx.client, t);
    if (step.column !== undefined && !(await columnInfo(ctx.client, t, step.column)))
      throw new UserError(`${label(t)} has no column ${step.column}`);
    const facts = await dropReadiness(ctx.client, specOf(step));
    const deprecatedHere = (ctx.earlier ?? []).some(
      (s) =>
        s.kind === 'deprecate' &&
        tableRef(s.table).table === t.table &&
        tableRef(s.table).schema === t.schema &&
        s.column === step.column,
    );
    if (!facts.deprecatedAt && !deprecatedHere)
      throw new UserError(
        `${what(step)} was never deprecated: add a deprecate step (this plan or an earlier one), deploy code that no longer uses it, then drop it`,
      );
    if (facts.readers?.length)
      throw new UserError(
        `${what(step)} is still used by statements pg_stat_statements has seen: ${facts.readers.join(' | ')}; deploy code that no longer uses it (and pg_stat_statements_reset()), then drop it`,
      );
  });
}

export async function dropCheck(input: StepInput<Step>): Promise<DropReadiness> {
  return expandActivity(input.connection, 'drop', (client) =>
    dropReadiness(client, specOf(input.step)),
  );
}

/**
 * The drop: no undo. `confirmed`: the workflow's guard passed (a person approved the gate, or
 * the plan says who confirmed); only pg_stat_statements readers still refuse it here.
 */
export async function dropRun(input: StepInput<Step> & { confirmed: boolean }): Promise<void> {
  const { step } = input;
  await expandActivity(input.connection, 'drop', async (client, opts) => {
    const facts = await dropReadiness(client, specOf(step));
    if (facts.gone) return;
    if (!facts.deprecatedAt) throw new UserError(`${what(step)} is not deprecated any more`);
    // The deprecation period was the workflow's durable timer: its clock, not this one, decides.
    if (facts.readers?.length)
      throw new UserError(
        `${what(step)} is still used by statements pg_stat_statements has seen: ${facts.readers.join(' | ')}`,
      );
    if (facts.readers === null && !input.confirmed && !step.confirmedUnused)
      throw new UserError(
        `pg_stat_statements is not installed and nobody confirmed that ${what(step)} is unused`,
      );
    await runDrop(client, specOf(step), opts);
  });
}

export { dropRun as run };
