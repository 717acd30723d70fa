/** Step kind `verify`: pure facts (the workflow bundle imports this file). */
import { copyingActivity } from '../options';
import type { ResolvedStepOf } from '../schemas';
import type { StepSpec } from '../types';

export const spec: StepSpec<ResolvedStepOf<'verify'>> = {
  fields: '—',
  summary: 'chunked checksum comparison; settings from `verify:`; a mismatch fails the step',
  undo: { kind: 'nothing', text: 'reads only' },
  after: [{ kind: 'backfill', why: 'verification compares the filled tables' }],
  options: () => copyingActivity,
};
