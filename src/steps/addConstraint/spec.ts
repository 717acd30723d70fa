/** Step kind `addConstraint`: pure facts (the workflow bundle imports this file). */
import { longActivity, undoActivity } from '../options';
import type { ResolvedStepOf } from '../schemas';
import type { StepSpec } from '../types';

export const spec: StepSpec<ResolvedStepOf<'addConstraint'>> = {
  fields:
    '`table`, `constraint` (required); `check` (an SQL condition) or `foreignKey` (`columns`, `references`, `referencedColumns`, `onDelete`)',
  summary:
    'adds a CHECK or FOREIGN KEY `NOT VALID`, then `VALIDATE` (writes go on); rows it would reject are named up front',
  standalone: true,
  undo: { kind: 'undo', text: 'drops the constraint, if this run added it' },
  options: () => longActivity,
  undoOptions: () => undoActivity,
};
