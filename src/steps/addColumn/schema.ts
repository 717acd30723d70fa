/** Step kind `addColumn`, plan side. */
import { z } from 'zod';
import { expression, identifier, sqlType, stepName, tableName } from '../../plan/fields';

export const schema = z.strictObject({
  kind: z.literal('addColumn'),
  name: stepName.optional(),
  table: tableName('the table to add the column to, e.g. public.users'),
  column: identifier('the new column'),
  type: sqlType,
  /** A constant (non-volatile) expression; a volatile one would rewrite the table. */
  default: expression.optional(),
});
