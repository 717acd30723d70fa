/** Step kind `backup`: pure facts (the workflow bundle imports this file). */
import { longActivity } from '../options';
import type { ResolvedStepOf } from '../schemas';
import type { StepSpec } from '../types';

export const spec: StepSpec<ResolvedStepOf<'backup'>> = {
  fields: '—',
  summary: 'dumps the source table (local directory or S3)',
  standalone: true,
  undo: { kind: 'nothing', text: 'backups are kept: they are the way back after a mistake' },
  once: true,
  options: () => longActivity,
};
