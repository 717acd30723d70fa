/** Step kind `shadow`, I/O. The plan check has already created the new table from its DDL. */
import { deferrableObjects, tableOid } from '../../plan/catalog';
import type { ResolvedStepOf } from '../schemas';
import { changeOf, type ValidateContext } from '../validate-context';

export { shadowRun as run, shadowUndo as undo } from './table';

/** The new table's catalog can be read and its deferred objects listed, as shadowRun will. */
export async function validate(_step: ResolvedStepOf<'shadow'>, ctx: ValidateContext) {
  const oid = await tableOid(ctx.client, changeOf(ctx).target);
  if (oid === null) {
    ctx.problem('target.table', 'the DDL did not create the new table');
    return;
  }
  await deferrableObjects(ctx.client, oid, changeOf(ctx).targetKey);
}
