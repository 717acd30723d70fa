/** Step kind `createIndex`, plan side (the `index` kind builds the new table's deferred indexes). */
import { z } from 'zod';
import { identifier, stepName, tableName } from '../../plan/fields';

export const schema = z.strictObject({
  kind: z.literal('createIndex'),
  name: stepName.optional(),
  table: tableName('the table to index, e.g. public.users'),
  index: identifier('the index name'),
  columns: z.array(identifier('an indexed column')).min(1, { error: 'name at least one column' }),
  unique: z.boolean({ error: 'must be true or false' }).default(false),
});
