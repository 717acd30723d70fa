/** Step kind `monitor`: pure facts (the workflow bundle imports this file). */
import { checkActivity } from '../options';
import type { ResolvedStepOf } from '../schemas';
import type { StepSpec } from '../types';

export const spec: StepSpec<ResolvedStepOf<'monitor'>> = {
  fields: '`seconds` (required, 0 – 7 days), `checks` (none)',
  summary: 'a timed window running `run.monitor.checks` plus its own `checks`',
  standalone: true,
  undo: { kind: 'nothing', text: 'reads only; a failed check rolls back or pauses' },
  /** One tick's checks; the window itself is a durable timer in the workflow. */
  options: () => checkActivity,
};
