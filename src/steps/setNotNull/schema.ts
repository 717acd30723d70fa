/** Step kind `setNotNull`, plan side. */
import { z } from 'zod';
import { identifier, stepName, tableName } from '../../plan/fields';

export const schema = z.strictObject({
  kind: z.literal('setNotNull'),
  name: stepName.optional(),
  table: tableName('the table, e.g. public.users'),
  column: identifier('the column that becomes NOT NULL'),
});
