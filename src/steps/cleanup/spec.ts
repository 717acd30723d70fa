/** Step kind `cleanup`: pure facts (the workflow bundle imports this file). */
import { shortActivity } from '../options';
import type { ResolvedStepOf } from '../schemas';
import type { StepSpec } from '../types';

export const spec: StepSpec<ResolvedStepOf<'cleanup'>> = {
  fields: '`oldTable` (`archive`), `retentionHours` (168)',
  summary:
    'waits out `run.rollbackWindowSeconds`, drops the triggers, archives the old table (renames it), or with `drop` drops it after `retentionHours`',
  undo: {
    kind: 'none',
    text: 'from here on the old table is no longer kept in sync',
  },
  once: true,
  options: () => shortActivity,
};
