/** Step kind `approval`: pure facts (the workflow bundle imports this file). */
import type { ResolvedStepOf } from '../schemas';
import type { StepSpec } from '../types';

export const spec: StepSpec<ResolvedStepOf<'approval'>> = {
  fields: "`gate` (the step's name, else the stage's), `timeoutSeconds` (none), `auto` (false)",
  summary:
    'waits for `cutover approve <run> <gate>`; no approval in time rolls back; `auto: true` passes at once',
  standalone: true,
  undo: { kind: 'nothing', text: 'waits only' },
  // No options: a gate is a durable wait in the workflow, not an activity.
};
