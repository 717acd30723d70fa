/** Step kind `monitor`, I/O. */
import type { ClientBase } from 'pg';
import { connectionUrl } from '../../db/connect';
import { probe } from '../../db/probe';
import { resultShapeProblem } from '../../sql/result-shape';
import type { PlanMonitorCheck } from '../../plan/fields';
import { resolveHeaders } from '../../router/http-request';
import type { ResolvedStepOf } from '../schemas';
import type { ValidateContext } from '../validate-context';
import { withPlannedTables } from '../expand-io';

export { monitorChecks as run } from './monitor';

/**
 * One check: an sql check on the plan's own connection compiles here, where the new table
 * exists (EXPLAIN, so nothing runs); on another connection it is only cheap to check that the
 * connection is configured; http and prometheus checks need their secret headers set.
 */
export async function validateCheck(
  client: ClientBase,
  check: PlanMonitorCheck,
  path: string,
  ctx: Pick<ValidateContext, 'plan' | 'env' | 'problem'>,
): Promise<void> {
  if (check.kind !== 'sql') {
    try {
      resolveHeaders(check.headers, check.headersFromEnv, ctx.env);
    } catch (err) {
      ctx.problem(`${path}.headersFromEnv`, (err as Error).message);
    }
    return;
  }
  const connection = check.connection ?? ctx.plan.connection;
  if (connection !== ctx.plan.connection) {
    try {
      connectionUrl(connection, ctx.env);
    } catch (err) {
      ctx.problem(`${path}.connection`, (err as Error).message);
    }
    return;
  }
  const err = await probe(client, `EXPLAIN (COSTS OFF) ${check.query}`);
  if (err)
    ctx.problem(
      `${path}.query`,
      `does not compile: ${err}: fix the query (it must return one row with one number)`,
    );
  else {
    const shape = await resultShapeProblem(client, check.query, true);
    if (shape) ctx.problem(`${path}.query`, shape);
  }
}

/** The window's own checks (run.monitor.checks are the plan's: checked once, by the plan check). */
export async function validate(step: ResolvedStepOf<'monitor'>, ctx: ValidateContext) {
  const fromShift = !ctx.path.startsWith('stages[');
  // A check after expand steps may read what they add (a column, its values).
  await withPlannedTables(ctx.client, ctx.earlier ?? [], async () => {
    for (const [i, check] of (step.checks ?? []).entries())
      await validateCheck(
        ctx.client,
        check,
        fromShift ? `shift.checks[${i}]` : `${ctx.path}.checks[${i}]`,
        ctx,
      );
  });
}
