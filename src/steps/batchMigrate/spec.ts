/** Step kind `batchMigrate`: pure facts (the workflow bundle imports this file). */
import { copyingActivity, undoActivity } from '../options';
import type { ResolvedStepOf } from '../schemas';
import type { StepSpec } from '../types';

export const spec: StepSpec<ResolvedStepOf<'batchMigrate'>> = {
  fields:
    '`migration`, `source.table` (required), `source.where` (all rows), `target` (`table`, `columns`) or `module`, `batchSize` (1000), `concurrency` (1), `itemAttempts` (3), `dryRun` (false), `maxDeadLetters` (no limit)',
  summary:
    'a durable batch data migration: keyset batches, each committed with its checkpoint; failing items dead-lettered with key and error; verified by counts and rows (SQL mapping)',
  standalone: true,
  undo: {
    kind: 'undo',
    text: 'forgets its checkpoints (dead letters stay; the written rows go with the destination)',
  },
  options: () => copyingActivity,
  undoOptions: () => undoActivity,
};
