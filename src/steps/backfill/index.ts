/**
 * Step kind `backfill`, I/O: validate here; run / undo are the backfillRun / backfillUndo
 * activities (./activity.ts over src/backfill). The copy's INSERT … SELECT is the sync
 * step's forward upsert without the trigger, so compiling the mapping is the sync step's
 * validate (one compile, not one per step).
 */
import type { ClientBase } from 'pg';
import { UserError } from '../../errors';
import { tableColumns, tableOid } from '../../plan/catalog';
import type { ResolvedChange } from '../../plan/types';
import { withConnection } from '../../temporal/activity';
import type { ResolvedStepOf } from '../schemas';
import { changeOf, type ValidateContext } from '../validate-context';

/** Key columns the keyset batches order by, missing from either table. */
async function keyProblems(client: ClientBase, change: ResolvedChange): Promise<string[]> {
  const out: string[] = [];
  for (const [table, key] of [
    [change.source, change.sourceKey],
    [change.target, change.targetKey],
  ] as const) {
    const oid = await tableOid(client, table);
    if (oid === null) {
      out.push(`table ${table.schema}.${table.table} does not exist`);
      continue;
    }
    const cols = new Set((await tableColumns(client, oid)).map((c) => c.name));
    for (const k of key)
      if (!cols.has(k))
        out.push(`key column "${k}" is missing from ${table.schema}.${table.table}`);
  }
  return out;
}

export async function validate(_step: ResolvedStepOf<'backfill'>, ctx: ValidateContext) {
  for (const p of await keyProblems(ctx.client, changeOf(ctx))) ctx.problem('key', p);
}

/** The activity form (tests, tools): throws one UserError naming every problem. */
export async function backfillValidate(input: { change: ResolvedChange }): Promise<void> {
  const problems = await withConnection(input.change.connection, 'cutover-backfill', (c) =>
    keyProblems(c, input.change),
  );
  if (problems.length)
    throw new UserError(
      `backfill of plan "${input.change.name}" cannot run: ${problems.join('; ')}`,
    );
}

export { backfillRun as run, backfillUndo as undo } from './activity';
