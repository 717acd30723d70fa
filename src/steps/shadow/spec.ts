/** Step kind `shadow`: pure facts (the workflow bundle imports this file). */
import { shortActivity, undoActivity } from '../options';
import type { ResolvedStepOf } from '../schemas';
import type { StepSpec } from '../types';

export const spec: StepSpec<ResolvedStepOf<'shadow'>> = {
  fields: '—',
  summary: 'creates the new table with its key only',
  undo: { kind: 'undo', text: 'drops it (kept with `keepShadowOnAbort`)' },
  once: true,
  required: 'the new table cannot be filled without it',
  options: () => shortActivity,
  undoOptions: () => undoActivity,
};
