/** Step kind `monitor`, plan side: an sql check without a connection queries the plan's database. */
import { z } from 'zod';
import { int, monitorCheckSchema, stepName, type PlanMonitorCheck } from '../../plan/fields';
import type { ResolveContext } from '../types';

export const schema = z.strictObject({
  kind: z.literal('monitor'),
  name: stepName.optional(),
  seconds: int('length of the monitoring window', 0, 7 * 86400),
  checks: z.array(monitorCheckSchema).optional(),
});

type Step = z.output<typeof schema>;

/** An sql monitoring check without a connection queries the plan's own database. */
export function withConnection(check: PlanMonitorCheck, connection: string): PlanMonitorCheck {
  return check.kind === 'sql' && check.connection === undefined ? { ...check, connection } : check;
}

export function resolve(step: Step, id: string, ctx: ResolveContext): Step & { id: string } {
  return step.checks
    ? { ...step, id, checks: step.checks.map((c) => withConnection(c, ctx.connection)) }
    : { ...step, id };
}
