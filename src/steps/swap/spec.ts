/** Step kind `swap`: pure facts (the workflow bundle imports this file). */
import type { ActivityOptions } from '@temporalio/common';
import { longActivity, shortActivity, undoActivity } from '../options';
import type { ResolvedStepOf } from '../schemas';
import type { StepSpec } from '../types';

export const spec: StepSpec<ResolvedStepOf<'swap'>> & {
  validateKeysOptions: ActivityOptions;
  validateKeysUndoOptions: ActivityOptions;
} = {
  fields:
    '`archive` (`<table>_old_<run start, yyyymmddhhmmss>`), `lockTimeoutMs` (1000), `maxWaitSeconds` (600)',
  summary:
    'in one transaction: stops the forward sync, settles the sync debt, renames old → archive and new → original name, carries the dependents over, starts the reverse sync new → archive; waits visibly for long transactions on the tables',
  undo: {
    kind: 'undo',
    text: 'swaps back the same way (without a down mapping there is no reverse sync, and the swap itself is the point of no return)',
  },
  once: true,
  after: [{ kind: 'verify', why: 'the new table takes the name only once verified' }],
  // Each attempt and the preparation are quick: an attempt makes at most 6 lock tries of
  // min(lockTimeoutMs, deadlock_timeout / 2) each (src/swap/locks.ts).
  options: () => shortActivity,
  undoOptions: () => undoActivity,
  /** VALIDATE of the foreign keys added NOT VALID scans the child tables: heartbeats. */
  validateKeysOptions: longActivity,
  validateKeysUndoOptions: undoActivity,
};
