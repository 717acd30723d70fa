/** Step kind `backfill`: pure facts (the workflow bundle imports this file). */
import type { ActivityOptions } from '@temporalio/common';
import { copyingActivity, shortActivity, undoActivity } from '../options';
import type { ResolvedStepOf } from '../schemas';
import type { StepSpec } from '../types';

export const spec: StepSpec<ResolvedStepOf<'backfill'>> & { splitOptions: ActivityOptions } = {
  fields: '—',
  summary:
    'copies rows in batches (heap page ranges, or keyset ranges where page order does not apply), resumable; settings from `backfill:`',
  undo: {
    kind: 'undo',
    text: 'forgets its throttle settings (the copied rows go with the new table)',
  },
  once: true,
  required: 'the new table cannot be filled without it',
  after: [{ kind: 'sync', why: 'writes during the copy would otherwise be missed' }],
  options: () => copyingActivity,
  /** Splitting the key space for parallel ranges: one quick query. */
  splitOptions: shortActivity,
  undoOptions: () => undoActivity,
};
