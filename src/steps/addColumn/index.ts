/**
 * Step kind `addColumn`, I/O: the library is src/expand/add-column.ts. The run adds the column
 * and its ledger row in one transaction; the undo drops it only when the ledger says this run
 * added it, so a column that was there before the run is never dropped.
 */
import { columnInfo, qi, qt, tableRef } from '../../expand/common';
import { validateAddColumn, type AddColumnSpec } from '../../expand/add-column';
import { UserError } from '../../errors';
import { ddl } from '../../expand/common';
import type { ResolvedStepOf } from '../schemas';
import type { ValidateContext } from '../validate-context';
import {
  changeRecorded,
  expandActivity,
  forget,
  owns,
  validating,
  type StepInput,
} from '../expand-io';

type Step = ResolvedStepOf<'addColumn'>;
export type AddColumnInput = StepInput<Step> & { plan: string };

const specOf = (s: Step): AddColumnSpec => ({
  table: s.table,
  column: s.column,
  type: s.type,
  ...(s.default !== undefined ? { default: s.default } : {}),
});

/** The table exists, the type parses, the default is not volatile, no earlier step adds it. */
export async function validate(step: Step, ctx: ValidateContext) {
  await validating(ctx, async () => {
    const twice = (ctx.earlier ?? []).find(
      (s) => s.kind === 'addColumn' && s.column === step.column && s.table === step.table,
    );
    if (twice) throw new UserError(`step ${twice.id} adds ${step.column} already`);
    await validateAddColumn(ctx.client, specOf(step));
  });
}

export async function addColumnRun(input: AddColumnInput): Promise<{ added: boolean }> {
  const { step } = input;
  return expandActivity(input.connection, 'addColumn', async (client, opts) => {
    await validateAddColumn(client, specOf(step));
    const t = tableRef(step.table);
    if (await columnInfo(client, t, step.column)) return { added: false };
    const def = step.default !== undefined ? ` DEFAULT (${step.default})` : '';
    await changeRecorded(
      client,
      t,
      { plan: input.plan, step: step.id },
      `column ${step.column}`,
      [`ALTER TABLE ${qt(t)} ADD COLUMN IF NOT EXISTS ${qi(step.column)} ${step.type}${def}`],
      opts,
    );
    return { added: true };
  });
}

/** Drops the column this run added (ledger), with whatever later steps wrote into it. Idempotent. */
export async function addColumnUndo(input: AddColumnInput): Promise<void> {
  const ref = { plan: input.plan, step: input.step.id };
  await expandActivity(input.connection, 'addColumn', async (client, opts) => {
    if (!(await owns(client, ref))) return;
    const t = tableRef(input.step.table);
    await ddl(
      client,
      t,
      `ALTER TABLE ${qt(t)} DROP COLUMN IF EXISTS ${qi(input.step.column)}`,
      opts,
    );
    await forget(client, ref);
  });
}

export { addColumnRun as run, addColumnUndo as undo };
