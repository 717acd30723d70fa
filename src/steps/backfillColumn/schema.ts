/** Step kind `backfillColumn`, plan side. */
import { z } from 'zod';
import { expression, identifier, int, stepName, tableName } from '../../plan/fields';

export const schema = z.strictObject({
  kind: z.literal('backfillColumn'),
  name: stepName.optional(),
  table: tableName('the table whose column is filled, e.g. public.users'),
  column: identifier('the column to fill'),
  /** SQL over the row's own columns, e.g. lower(email). */
  expression,
  batchSize: int('rows per batch', 1, 1_000_000).default(1000),
  pauseMs: int('pause between batches in ms', 0, 600_000).default(0),
});
