/** Step kind `index`, I/O: the run is shadowBuildIndexes (./../shadow/table.ts). */
import type { ResolvedStepOf } from '../schemas';
import type { ValidateContext } from '../validate-context';

export { shadowBuildIndexes as run } from '../shadow/table';

/** Nothing of its own: the shadow step's validate reads the deferred list this step builds. */
export async function validate(_step: ResolvedStepOf<'index'>, _ctx: ValidateContext) {}
