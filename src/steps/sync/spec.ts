/** Step kind `sync`: pure facts (the workflow bundle imports this file). */
import { shortActivity, undoActivity } from '../options';
import type { ResolvedStepOf } from '../schemas';
import type { StepSpec } from '../types';

export const spec: StepSpec<ResolvedStepOf<'sync'>> = {
  fields: '—',
  summary: 'installs sync triggers (both directions unless reads-only) and the TRUNCATE guard',
  undo: { kind: 'undo', text: 'settles the sync debt and drops them' },
  once: true,
  required: 'the new table cannot be filled without it',
  after: [{ kind: 'shadow', why: 'the triggers write into the new table' }],
  options: () => shortActivity,
  undoOptions: () => undoActivity,
};
