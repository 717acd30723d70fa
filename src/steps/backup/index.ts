/** Step kind `backup`, I/O: validate here; run is the backupRun activity (src/backup). */
import { storageFromEnv } from '../../storage/config';
import type { ResolvedStepOf } from '../schemas';
import type { ValidateContext } from '../validate-context';

export { backupRun as run, backupUndo as undo } from '../../backup/backup';

/** The backup target is configured (local directory or S3, from the environment). */
export async function validate(_step: ResolvedStepOf<'backup'>, ctx: ValidateContext) {
  try {
    storageFromEnv(ctx.env);
  } catch (err) {
    ctx.problem(ctx.path, `backups cannot be stored: ${(err as Error).message}`);
  }
}
