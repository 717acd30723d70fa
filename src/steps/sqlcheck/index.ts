/** Step kind `sqlcheck`, I/O. */
import { probe } from '../../db/probe';
import type { ResolvedStepOf } from '../schemas';
import type { ValidateContext } from '../validate-context';

export { sqlcheck as run } from '../verify/tables';

/** Each query compiles where it will run (EXPLAIN, so nothing runs). */
export async function validate(step: ResolvedStepOf<'sqlcheck'>, ctx: ValidateContext) {
  const own = step.checks !== undefined && ctx.path.startsWith('stages[');
  for (const [i, check] of (step.checks ?? []).entries()) {
    const err = await probe(ctx.client, `EXPLAIN (COSTS OFF) ${check.sql}`);
    const path = own ? `${ctx.path}.checks[${i}]` : `verify.sqlChecks[${i}]`;
    if (err) ctx.problem(`${path}.sql`, `does not compile: ${err}: fix the query`);
  }
}
