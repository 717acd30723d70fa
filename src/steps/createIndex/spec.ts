/** Step kind `createIndex`: pure facts (the workflow bundle imports this file). */
import { longActivity, undoActivity } from '../options';
import type { ResolvedStepOf } from '../schemas';
import type { StepSpec } from '../types';

export const spec: StepSpec<ResolvedStepOf<'createIndex'>> = {
  fields: '`table`, `index`, `columns` (required), `unique` (false)',
  summary:
    'CREATE INDEX CONCURRENTLY on a live table, dropping an INVALID leftover of an earlier failure first; a unique index with duplicates is refused up front, naming them',
  standalone: true,
  undo: { kind: 'undo', text: 'drops the index concurrently, if this run built it' },
  options: () => longActivity,
  undoOptions: () => undoActivity,
};
