/** Step kind `deprecate`: pure facts (the workflow bundle imports this file). */
import { shortActivity, undoActivity } from '../options';
import type { ResolvedStepOf } from '../schemas';
import type { StepSpec } from '../types';

export const spec: StepSpec<ResolvedStepOf<'deprecate'>> = {
  fields: '`table` (required), `column` (none: the whole table)',
  summary:
    'marks a column or table as deprecated (a comment with the time), the first half of a guarded drop',
  standalone: true,
  undo: { kind: 'undo', text: 'removes the mark, if this run set it' },
  options: () => shortActivity,
  undoOptions: () => undoActivity,
};
