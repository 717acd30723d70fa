/** Step kind `approval`: no I/O (a durable wait in the workflow); gate names are stage rules. */
import type { ResolvedStepOf } from '../schemas';
import type { ValidateContext } from '../validate-context';

export async function validate(_step: ResolvedStepOf<'approval'>, _ctx: ValidateContext) {}
