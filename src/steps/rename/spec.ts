/** Step kind `rename`: pure facts (the workflow bundle imports this file). */
import { shortActivity, undoActivity } from '../options';
import type { ResolvedStepOf } from '../schemas';
import type { StepSpec } from '../types';

export const spec: StepSpec<ResolvedStepOf<'rename'>> = {
  fields:
    '`archive` (`<table>_old_<run start, yyyymmddhhmmss>`), `lockTimeoutMs` (1000), `maxWaitSeconds` (600)',
  summary:
    'the finish of a plan whose point is the new name (`finish: rename`): in one transaction stops the forward sync, settles its debt, renames old → archive, re-points foreign keys and serial sequences at the new table, leaves the old name as an updatable view over the new table (owner, grants, comment) until cleanup, starts the reverse sync new → archive and routes 100% to the new table; waits visibly for long transactions like the swap',
  undo: {
    kind: 'undo',
    text: 'renames back in one transaction: the view goes and the old table, with every write made through either name, takes its name again (without a down mapping there is no reverse sync, and the rename itself is the point of no return)',
  },
  once: true,
  after: [{ kind: 'verify', why: 'the old name points at the new table only once it is verified' }],
  // Each attempt is quick: at most 6 lock tries of min(lockTimeoutMs, deadlock_timeout / 2) each
  // (src/swap/locks.ts).
  options: () => shortActivity,
  undoOptions: () => undoActivity,
};
