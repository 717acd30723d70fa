/** Step kind `cleanup`, I/O. */
import type { ResolvedStepOf } from '../schemas';
import type { ValidateContext } from '../validate-context';

export { cleanupRun as run } from './cleanup';

/**
 * Nothing of its own to refuse: the archive's name is the swap's (checked by the swap step's
 * validate) or `<table>_old_<run start>`, unique per run, so no name can be taken in advance.
 */
export async function validate(_step: ResolvedStepOf<'cleanup'>, _ctx: ValidateContext) {}
