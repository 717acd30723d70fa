/** Step kind `sqlcheck`, plan side: its checks default to the plan's verify.sqlChecks. */
import { z } from 'zod';
import { sqlCheckSchema, stepName, type SqlCheck } from '../../plan/fields';
import type { ResolveContext } from '../types';

export const schema = z.strictObject({
  kind: z.literal('sqlcheck'),
  name: stepName.optional(),
  checks: z.array(sqlCheckSchema).optional(),
});

type Step = z.output<typeof schema>;

export function resolve(step: Step, id: string, ctx: ResolveContext): Step & { id: string } {
  return { ...step, id, checks: step.checks ?? (ctx.sqlChecks as SqlCheck[]) };
}
