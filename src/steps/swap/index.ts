/** Step kind `swap`, I/O: validate here; run / undo are the swapAttempt / swapBackAttempt activities. */
import { relationExists } from '../../plan/catalog';
import { inspectDependents, refusals } from '../../swap/dependents';
import { readSwapRecord } from '../../swap/swap';
import type { ResolvedStepOf } from '../schemas';
import { changeOf, type ValidateContext } from '../validate-context';

export { swapAttempt as run, swapBackAttempt as undo } from './swap';

/**
 * Everything that points at the old table can follow the swap (a materialized view, a function
 * of the row type, partitioning or inheritance cannot: each is named with what to do instead),
 * both tables are in one schema, a given archive name is free, and no other run of this plan
 * holds a swap. Read-only.
 */
export async function validate(step: ResolvedStepOf<'swap'>, ctx: ValidateContext) {
  const { source, target } = changeOf(ctx);
  for (const d of refusals(await inspectDependents(ctx.client, source)))
    ctx.problem('source', `${d.kind} ${d.name}: ${d.action}`);
  if (target.schema !== source.schema)
    ctx.problem(
      'target.table',
      `the swap gives the new table the old one's name inside schema ${source.schema}: create the new table there too`,
    );
  if (
    step.archive !== undefined &&
    (await relationExists(ctx.client, { schema: source.schema, table: step.archive }))
  )
    ctx.problem(
      `${ctx.path}.archive`,
      `${source.schema}.${step.archive} already exists, and the swap renames the old table to that name: drop or rename it, or name another archive`,
    );
  const record = await readSwapRecord(ctx.client, changeOf(ctx).name);
  if (record?.state === 'swapped')
    ctx.problem(
      ctx.path,
      `plan ${changeOf(ctx).name} is already swapped (archive ${record.archive}) by another run: abort or finish that run first`,
    );
}
