/**
 * Step kind `addConstraint`, I/O (library: src/expand/add-constraint.ts): added NOT VALID (a
 * moment's lock; new rows are checked from then on), then VALIDATE, which lets writes through.
 * The pre-flight names the first rows the constraint would reject, on the table as the earlier
 * steps will leave it, before anything changes.
 */
import { ddl, label, qi, qt, tableRef } from '../../expand/common';
import { validateAddConstraint, type AddConstraintSpec } from '../../expand/add-constraint';
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
  validating,
  type StepInput,
} from '../expand-io';

type Step = ResolvedStepOf<'addConstraint'>;
export type AddConstraintInput = StepInput<Step> & { plan: string };

const specOf = (s: Step): AddConstraintSpec =>
  s.check !== undefined
    ? { table: s.table, name: s.constraint, check: s.check }
    : { table: s.table, name: s.constraint, foreignKey: s.foreignKey! };

function definition(s: Step): string {
  if (s.check !== undefined) return `CHECK (${s.check})`;
  const fk = s.foreignKey!;
  return `FOREIGN KEY (${fk.columns.map(qi).join(', ')}) REFERENCES ${qt(tableRef(fk.references))} (${fk.referencedColumns.map(qi).join(', ')})${fk.onDelete ? ` ON DELETE ${fk.onDelete.toUpperCase()}` : ''}`;
}

export async function validate(step: Step, ctx: ValidateContext) {
  await validating(ctx, async () => {
    const t = await plannedTable(ctx.client, step.table, ctx.earlier);
    const touched = [...t.added, ...t.filled];
    if (!touched.length) return validateAddConstraint(ctx.client, specOf(step));
    // Earlier steps change the table: judge the rows as they will be.
    let where: string;
    if (step.check !== undefined) where = `NOT coalesce((${step.check}), true)`;
    else {
      const fk = step.foreignKey!;
      for (const c of fk.columns)
        if (!t.columns.has(c)) throw new UserError(`${label(t.ref)} has no column ${c}`);
      const match = fk.columns
        .map((c, i) => `r.${qi(fk.referencedColumns[i]!)} = ${qi(t.ref.table)}.${qi(c)}`)
        .join(' AND ');
      where = `${fk.columns.map((c) => `${qi(t.ref.table)}.${qi(c)} IS NOT NULL`).join(' AND ')} AND NOT EXISTS (SELECT 1 FROM ${qt(tableRef(fk.references))} r WHERE ${match})`;
    }
    const keys = await plannedOffenders(ctx.client, t, where);
    if (keys.length)
      throw new UserError(
        `${label(t.ref)} would have rows that ${step.constraint} rejects, with key ${keysText(keys)}: fix them first`,
      );
  });
}

export async function addConstraintRun(input: AddConstraintInput): Promise<{ added: boolean }> {
  const { step } = input;
  const ref = { plan: input.plan, step: step.id };
  return expandActivity(input.connection, 'addConstraint', async (client, opts) => {
    const t = tableRef(step.table);
    const existing = await client.query<{ convalidated: boolean }>(
      `SELECT convalidated FROM pg_constraint WHERE conrelid = to_regclass($1) AND conname = $2`,
      [qt(t), step.constraint],
    );
    const ours = await owns(client, ref);
    if (existing.rows.length && !ours) {
      if (existing.rows[0]!.convalidated) return { added: false };
      throw new UserError(
        `${label(t)} has a constraint ${step.constraint} already (NOT VALID) that this run did not add: validate or drop it, or choose another name`,
      );
    }
    if (!existing.rows.length) {
      await validateAddConstraint(client, specOf(step));
      await changeRecorded(
        client,
        t,
        ref,
        `constraint ${step.constraint}`,
        [
          `ALTER TABLE ${qt(t)} ADD CONSTRAINT ${qi(step.constraint)} ${definition(step)} NOT VALID`,
        ],
        opts,
      );
    }
    if (!existing.rows[0]?.convalidated)
      await ddl(client, t, `ALTER TABLE ${qt(t)} VALIDATE CONSTRAINT ${qi(step.constraint)}`, opts);
    return { added: true };
  });
}

export async function addConstraintUndo(input: AddConstraintInput): Promise<void> {
  const ref = { plan: input.plan, step: input.step.id };
  await expandActivity(input.connection, 'addConstraint', async (client, opts) => {
    if (!(await owns(client, ref))) return;
    const t = tableRef(input.step.table);
    await ddl(
      client,
      t,
      `ALTER TABLE ${qt(t)} DROP CONSTRAINT IF EXISTS ${qi(input.step.constraint)}`,
      opts,
    );
    await forget(client, ref);
  });
}

export { addConstraintRun as run, addConstraintUndo as undo };
