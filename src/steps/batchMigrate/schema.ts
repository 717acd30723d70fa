/** Step kind `batchMigrate`, plan side: the library's BatchMigrationSpec (src/batch/migrate.ts). */
import { z } from 'zod';
import {
  columnMap,
  expression,
  identifier,
  int,
  requiredString,
  stepName,
  tableName,
} from '../../plan/fields';

export const schema = z
  .strictObject({
    kind: z.literal('batchMigrate'),
    name: stepName.optional(),
    /** Names its checkpoints and dead letters; keep it when resuming. */
    migration: identifier('the migration name (names its checkpoints and dead letters)'),
    source: z.strictObject({
      table: tableName('the table walked by key'),
      where: expression.optional(),
    }),
    target: z
      .strictObject({
        table: tableName('the destination table'),
        columns: columnMap,
      })
      .optional(),
    /** A module on the worker exporting migrate(client, rows); instead of target. */
    module: requiredString('the path of a migrator module on the worker').optional(),
    batchSize: int('items per batch', 1, 100_000).default(1000),
    concurrency: int('key ranges walked at once', 1, 32).default(1),
    itemAttempts: int('attempts per failing item before it is dead-lettered', 1, 100).default(3),
    dryRun: z.boolean({ error: 'must be true or false' }).default(false),
    /** Dead letters above this fail the step (after the run; they stay for inspection). */
    maxDeadLetters: int('dead letters the step tolerates', 0, 1_000_000_000).optional(),
  })
  .refine((s) => (s.target === undefined) !== (s.module === undefined), {
    error: 'give either target (a per-row SQL mapping) or module (a per-batch migrator)',
  });
