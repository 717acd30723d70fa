/** Step kind `sqlcheck`: pure facts (the workflow bundle imports this file). */
import { shortActivity } from '../options';
import type { ResolvedStepOf } from '../schemas';
import type { StepSpec } from '../types';

export const spec: StepSpec<ResolvedStepOf<'sqlcheck'>> = {
  fields: '`checks` (`verify.sqlChecks`)',
  summary: 'runs `{ name, sql, expect }` assertions; any miss fails the step',
  undo: { kind: 'nothing', text: 'reads only (one READ ONLY transaction)' },
  options: () => shortActivity,
};
