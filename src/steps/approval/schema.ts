/** Step kind `approval`, plan side: the gate's name and `auto` are filled in when resolved. */
import { z } from 'zod';
import { int, stepName } from '../../plan/fields';
import type { ResolveContext } from '../types';

export const schema = z.strictObject({
  kind: z.literal('approval'),
  name: stepName.optional(),
  gate: stepName.optional(),
  timeoutSeconds: int('seconds to wait before giving up', 1, 30 * 86400).optional(),
  auto: z.boolean({ error: 'must be true or false' }).default(false),
});

type Step = z.output<typeof schema>;

/** The gate is the step's `gate`, else its name, else the stage's; run.autoApprove may pass it. */
export function resolve(
  step: Step,
  id: string,
  ctx: ResolveContext,
): Step & { id: string; gate: string } {
  const gate = step.gate ?? step.name ?? ctx.stageName;
  ctx.gates.add(gate);
  return { ...step, id, gate, auto: step.auto || ctx.autoGate(gate) };
}
