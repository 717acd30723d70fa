/** Step kind `deprecate`, plan side: marks a column or table for a later `drop`. */
import { z } from 'zod';
import { identifier, stepName, tableName } from '../../plan/fields';

export const schema = z.strictObject({
  kind: z.literal('deprecate'),
  name: stepName.optional(),
  table: tableName('the table (or the table of the column)'),
  column: identifier('the column; without it, the whole table').optional(),
});
