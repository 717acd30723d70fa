/** Step kind `sync`, I/O. */
import { UserError } from '../../errors';
import type { ResolvedStepOf } from '../schemas';
import { changeOf, type ValidateContext } from '../validate-context';
import { validateSyncWith } from './triggers';

export { syncRun as run, syncUndo as undo } from './triggers';

/** Everything syncRun would install compiles: tables, key, unique index, each direction's upsert. */
export async function validate(_step: ResolvedStepOf<'sync'>, ctx: ValidateContext) {
  try {
    await validateSyncWith(ctx.client, {
      change: changeOf(ctx),
      directions: ctx.readsOnly ? 'forward' : 'both',
    });
  } catch (err) {
    if (!(err instanceof UserError)) throw err;
    ctx.problem('mapping', err.message);
  }
}
