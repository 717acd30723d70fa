/** Step kind `drop`, plan side: drops a deprecated column or table once nothing reads it. */
import { z } from 'zod';
import { identifier, int, requiredString, stepName, tableName } from '../../plan/fields';
import type { ResolveContext } from '../types';

export const schema = z.strictObject({
  kind: z.literal('drop'),
  name: stepName.optional(),
  table: tableName('the table (or the table of the column)'),
  column: identifier('the column; without it, the whole table').optional(),
  minDeprecatedSeconds: int('seconds between the deprecation and the drop', 0, 365 * 86400).default(
    86_400,
  ),
  /** Who checked that nothing reads it, and how: skips the confirmation gate. */
  confirmedUnused: requiredString('who confirmed nothing reads it, and how').min(1).optional(),
  /** The gate `cutover approve` names when the drop waits for a person's confirmation. */
  gate: stepName.optional(),
  timeoutSeconds: int('seconds to wait for the confirmation', 1, 30 * 86400).optional(),
});

type Step = z.output<typeof schema>;

/** The confirmation gate's name: the step's `gate`, else `drop-<table>[-<column>]`. */
export function resolve(
  step: Step,
  id: string,
  ctx: ResolveContext,
): Step & { id: string; gate: string; auto: boolean } {
  const object = step.table.split('.').at(-1)! + (step.column ? `-${step.column}` : '');
  const gate = step.gate ?? `drop-${object}`;
  ctx.gates.add(gate);
  return { ...step, id, gate, auto: ctx.autoGate(gate) };
}
