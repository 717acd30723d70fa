/** Step kind `cleanup`, I/O. */
import { relationExists } from '../../plan/catalog';
import type { ResolvedStepOf } from '../schemas';
import type { ValidateContext } from '../validate-context';
import { archiveName } from './cleanup';

export { cleanupRun as run } from './cleanup';

/** The archive name the old table will get is free. */
export async function validate(_step: ResolvedStepOf<'cleanup'>, ctx: ValidateContext) {
  const source = ctx.change.source;
  const archive = archiveName({ change: ctx.change });
  if (await relationExists(ctx.client, { schema: source.schema, table: archive }))
    ctx.problem(
      ctx.path,
      `${source.schema}.${archive} already exists, and cleanup renames the old table to that name: drop or rename it first`,
    );
}
