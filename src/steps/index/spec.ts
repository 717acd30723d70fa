/** Step kind `index`: pure facts (the workflow bundle imports this file). */
import { longActivity } from '../options';
import type { ResolvedStepOf } from '../schemas';
import type { StepSpec } from '../types';

export const spec: StepSpec<ResolvedStepOf<'index'>> = {
  fields: '—',
  summary: 'builds the deferred indexes and constraints concurrently',
  undo: { kind: 'nothing', text: "the shadow step's undo drops them with the table" },
  once: true,
  after: [{ kind: 'backfill', why: 'secondary indexes are built after the copy' }],
  options: () => longActivity,
};
