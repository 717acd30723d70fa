/**
 * Step kind `setNotNull`, I/O (library: src/expand/set-not-null.ts). The pre-flight proves on the
 * table as the earlier steps will leave it that no row would be NULL, naming the first keys; the
 * run proves it again on the live rows before its first statement.
 */
import { columnInfo, ddl, label, qi, qt, tableRef } from '../../expand/common';
import { validateSetNotNull } from '../../expand/set-not-null';
import { UserError } from '../../errors';
import type { ResolvedStepOf } from '../schemas';
import type { ValidateContext } from '../validate-context';
import {
  changeRecorded,
  expandActivity,
  forget,
  keysText,
  owns,
  plannedOffenders,
  plannedTable,
  record,
  validating,
  type StepInput,
} from '../expand-io';

type Step = ResolvedStepOf<'setNotNull'>;
export type SetNotNullInput = StepInput<Step> & { plan: string };

/** The temporary CHECK that lets SET NOT NULL skip its scan (PostgreSQL 12+). */
const checkName = (column: string) => `${column}_not_null_cutover`.slice(0, 63);

export async function validate(step: Step, ctx: ValidateContext) {
  await validating(ctx, async () => {
    const t = await plannedTable(ctx.client, step.table, ctx.earlier);
    if (!t.columns.has(step.column))
      throw new UserError(
        `${label(t.ref)} has no column ${step.column}: add it first (an addColumn step before this one)`,
      );
    const keys = await plannedOffenders(ctx.client, t, `${qi(step.column)} IS NULL`);
    if (keys.length)
      throw new UserError(
        `${label(t.ref)}.${step.column} would be NULL in rows with key ${keysText(keys)}${t.filled.has(step.column) ? ' even after the earlier backfillColumn step' : ''}: fill them first (a backfillColumn step) before SET NOT NULL`,
      );
  });
}

export async function setNotNullRun(input: SetNotNullInput): Promise<{ changed: boolean }> {
  const { step } = input;
  const ref = { plan: input.plan, step: step.id };
  return expandActivity(input.connection, 'setNotNull', async (client, opts) => {
    const t = tableRef(step.table);
    // NOT NULL already: set by an earlier attempt of this step (ledger) or before the run.
    if ((await columnInfo(client, t, step.column))?.notNull)
      return { changed: await owns(client, ref) };
    await validateSetNotNull(client, step);
    // Recorded before the first statement: the column was nullable, so the undo's DROP NOT
    // NULL is right whichever statement a crash interrupts.
    await record(client, ref, `not null ${step.column}`);
    const check = qi(checkName(step.column));
    const has = await client.query(
      `SELECT 1 FROM pg_constraint WHERE conrelid = to_regclass($1) AND conname = $2`,
      [qt(t), checkName(step.column)],
    );
    if (!has.rows.length)
      await ddl(
        client,
        t,
        `ALTER TABLE ${qt(t)} ADD CONSTRAINT ${check} CHECK (${qi(step.column)} IS NOT NULL) NOT VALID`,
        opts,
      );
    // Scans the table under SHARE UPDATE EXCLUSIVE: writes go on meanwhile.
    await ddl(client, t, `ALTER TABLE ${qt(t)} VALIDATE CONSTRAINT ${check}`, opts);
    // The valid check proves SET NOT NULL without a scan under ACCESS EXCLUSIVE.
    await changeRecorded(
      client,
      t,
      ref,
      `not null ${step.column}`,
      [
        `ALTER TABLE ${qt(t)} ALTER COLUMN ${qi(step.column)} SET NOT NULL`,
        `ALTER TABLE ${qt(t)} DROP CONSTRAINT IF EXISTS ${check}`,
      ],
      opts,
    );
    return { changed: true };
  });
}

/** Drops NOT NULL (and the temporary check) when this run set it. Idempotent. */
export async function setNotNullUndo(input: SetNotNullInput): Promise<void> {
  const { step } = input;
  const ref = { plan: input.plan, step: step.id };
  await expandActivity(input.connection, 'setNotNull', async (client, opts) => {
    if (!(await owns(client, ref))) return;
    const t = tableRef(step.table);
    if (await columnInfo(client, t, step.column)) {
      await ddl(
        client,
        t,
        `ALTER TABLE ${qt(t)} DROP CONSTRAINT IF EXISTS ${qi(checkName(step.column))}`,
        opts,
      );
      await ddl(
        client,
        t,
        `ALTER TABLE ${qt(t)} ALTER COLUMN ${qi(step.column)} DROP NOT NULL`,
        opts,
      );
    }
    await forget(client, ref);
  });
}

export { setNotNullRun as run, setNotNullUndo as undo };
