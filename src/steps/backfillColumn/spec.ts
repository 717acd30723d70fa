/** Step kind `backfillColumn`: pure facts (the workflow bundle imports this file). */
import { copyingActivity } from '../options';
import type { ResolvedStepOf } from '../schemas';
import type { StepSpec } from '../types';

export const spec: StepSpec<ResolvedStepOf<'backfillColumn'>> = {
  fields: '`table`, `column`, `expression` (required), `batchSize` (1000), `pauseMs` (0)',
  summary:
    'fills a column by keyset `UPDATE … WHERE key > $last … LIMIT n` with an SQL expression, only rows that differ; throttled by `backfill.loadBudget` and `cutover pause / throttle`; resumable from its heartbeat',
  standalone: true,
  undo: {
    kind: 'nothing',
    text: 'it fills only a new column or NULLs (refused otherwise); the addColumn undo drops the column',
  },
  options: () => copyingActivity,
};
