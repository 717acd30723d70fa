/** Step kind `drop`: pure facts (the workflow bundle imports this file). */
import { shortActivity } from '../options';
import type { ResolvedStepOf } from '../schemas';
import type { StepSpec } from '../types';

export const spec: StepSpec<ResolvedStepOf<'drop'>> = {
  fields:
    '`table` (required), `column` (none: the whole table), `minDeprecatedSeconds` (86400), `confirmedUnused` (none), `gate` (`drop-<table>[-<column>]`), `timeoutSeconds` (none)',
  summary:
    'drops a deprecated column or table once `minDeprecatedSeconds` have passed and nothing reads it: pg_stat_statements where installed, else `confirmedUnused` or `cutover approve <run> <gate>`',
  standalone: true,
  undo: { kind: 'none', text: 'the data is gone (restore from the backup)' },
  options: () => shortActivity,
};
