/** Step kind `verify`, I/O. */
import { tableColumns, tableOid } from '../../plan/catalog';
import type { ResolvedStepOf } from '../schemas';
import { changeOf, type ValidateContext } from '../validate-context';

export { verify as run } from './tables';

/** Every compared column exists in the new table (the checksums cast to its column types). */
export async function validate(_step: ResolvedStepOf<'verify'>, ctx: ValidateContext) {
  const oid = await tableOid(ctx.client, changeOf(ctx).target);
  if (oid === null) return; // the shadow step reports it
  const cols = new Set((await tableColumns(ctx.client, oid)).map((c) => c.name));
  for (const m of changeOf(ctx).up)
    if (!cols.has(m.column))
      ctx.problem(`mapping.up.${m.column}`, `the new table has no column "${m.column}" to verify`);
}
