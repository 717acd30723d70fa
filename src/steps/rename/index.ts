/** Step kind `rename`, I/O: validate here; run / undo are the renameAttempt / renameBackAttempt activities. */
import { renameProblems } from '../../swap/rename';
import type { ResolvedStepOf } from '../schemas';
import { changeOf, type ValidateContext } from '../validate-context';

export { renameAttempt as run, renameBackAttempt as undo } from './rename';

/**
 * The old name can live on as a simple view over the new table (same schema, every old column
 * by name, nothing mapped by an expression), nothing that stays with the archive would be
 * bypassed (views, the application's triggers, policies: those need a swap), a given archive
 * name is free, and no other run of this plan holds a swap or rename. Read-only.
 */
export async function validate(step: ResolvedStepOf<'rename'>, ctx: ValidateContext) {
  for (const p of await renameProblems(ctx.client, changeOf(ctx), step.archive, true))
    ctx.problem(ctx.path, p);
}
