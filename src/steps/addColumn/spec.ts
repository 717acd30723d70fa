/** Step kind `addColumn`: pure facts (the workflow bundle imports this file). */
import { shortActivity, undoActivity } from '../options';
import type { ResolvedStepOf } from '../schemas';
import type { StepSpec } from '../types';

export const spec: StepSpec<ResolvedStepOf<'addColumn'>> = {
  fields: '`table`, `column`, `type` (required), `default` (none; must not be volatile)',
  summary:
    'adds a nullable column, or one with a constant default (a catalog-only change); a volatile default is refused',
  standalone: true,
  undo: { kind: 'undo', text: 'drops the column, if this run added it' },
  options: () => shortActivity,
  undoOptions: () => undoActivity,
};
