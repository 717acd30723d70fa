/**
 * Step kind `deprecate`, I/O (library: src/expand/drop.ts): marks a column or table with the
 * time, so a later `drop` step can insist that the deprecation came first and that time passed.
 */
import { assertTable, columnInfo, label, tableRef } from '../../expand/common';
import { dropReadiness, runDeprecate, undoDeprecate } from '../../expand/drop';
import { UserError } from '../../errors';
import type { ResolvedStepOf } from '../schemas';
import type { ValidateContext } from '../validate-context';
import { expandActivity, forget, owns, record, validating, type StepInput } from '../expand-io';

type Step = ResolvedStepOf<'deprecate'>;
export type DeprecateInput = StepInput<Step> & { plan: string };

const specOf = (s: Step) => ({
  table: s.table,
  ...(s.column !== undefined ? { column: s.column } : {}),
});

export async function validate(step: Step, ctx: ValidateContext) {
  await validating(ctx, async () => {
    const t = tableRef(step.table);
    await assertTable(ctx.client, t);
    if (step.column !== undefined && !(await columnInfo(ctx.client, t, step.column)))
      throw new UserError(`${label(t)} has no column ${step.column}`);
  });
}

export async function deprecateRun(input: DeprecateInput): Promise<{ deprecatedAt: string }> {
  const ref = { plan: input.plan, step: input.step.id };
  return expandActivity(input.connection, 'deprecate', async (client) => {
    const before = await dropReadiness(client, specOf(input.step));
    if (before.gone)
      throw new UserError(
        `${input.step.table}${input.step.column ? `.${input.step.column}` : ''} does not exist`,
      );
    if (!before.deprecatedAt) {
      await record(client, ref, 'deprecation mark');
      await runDeprecate(client, specOf(input.step));
    }
    return { deprecatedAt: (await dropReadiness(client, specOf(input.step))).deprecatedAt! };
  });
}

/** Removes the mark when this run set it. Idempotent. */
export async function deprecateUndo(input: DeprecateInput): Promise<void> {
  const ref = { plan: input.plan, step: input.step.id };
  await expandActivity(input.connection, 'deprecate', async (client) => {
    if (!(await owns(client, ref))) return;
    if (!(await dropReadiness(client, specOf(input.step))).gone)
      await undoDeprecate(client, specOf(input.step));
    await forget(client, ref);
  });
}

export { deprecateRun as run, deprecateUndo as undo };
