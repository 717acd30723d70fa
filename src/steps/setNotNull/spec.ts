/** Step kind `setNotNull`: pure facts (the workflow bundle imports this file). */
import { longActivity, undoActivity } from '../options';
import type { ResolvedStepOf } from '../schemas';
import type { StepSpec } from '../types';

export const spec: StepSpec<ResolvedStepOf<'setNotNull'>> = {
  fields: '`table`, `column` (required)',
  summary:
    'NOT NULL without a long lock: `CHECK … NOT VALID`, `VALIDATE`, `SET NOT NULL`, drop the check; refused up front, naming rows, while any row would be NULL',
  standalone: true,
  undo: { kind: 'undo', text: 'drops NOT NULL again, if this run set it' },
  // VALIDATE scans the whole table: hours on a big one, heartbeating.
  options: () => longActivity,
  undoOptions: () => undoActivity,
};
