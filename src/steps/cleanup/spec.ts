/** Step kind `cleanup`: pure facts (the workflow bundle imports this file). */
import { shortActivity } from '../options';
import type { ResolvedStepOf } from '../schemas';
import type { StepSpec } from '../types';

export const spec: StepSpec<ResolvedStepOf<'cleanup'>> = {
  fields: '`oldTable` (`archive`), `retentionHours` (168)',
  summary:
    'waits out `run.rollbackWindowSeconds`, then the point of no return: drops the reverse sync and the view under the name no longer used (after a swap the temporary name, after a rename the old name) or, without either, settles the sync debt, drops the triggers and renames the old table to its archive name in one transaction; with `drop` drops the archive after `retentionHours`',
  undo: {
    kind: 'none',
    text: 'from here on the old table is no longer kept in sync',
  },
  once: true,
  options: () => shortActivity,
};
