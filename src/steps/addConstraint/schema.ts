/** Step kind `addConstraint`, plan side: a CHECK or a FOREIGN KEY, added NOT VALID then validated. */
import { z } from 'zod';
import { expression, identifier, stepName, tableName } from '../../plan/fields';

export const schema = z
  .strictObject({
    kind: z.literal('addConstraint'),
    name: stepName.optional(),
    table: tableName('the table, e.g. public.orders'),
    constraint: identifier('the constraint name'),
    check: expression.optional(),
    foreignKey: z
      .strictObject({
        columns: z.array(identifier('a referencing column')).min(1),
        references: tableName('the referenced table'),
        referencedColumns: z.array(identifier('a referenced column')).min(1),
        onDelete: z
          .enum(['cascade', 'restrict', 'set null', 'no action'], {
            error: 'must be cascade, restrict, set null or no action',
          })
          .optional(),
      })
      .optional(),
  })
  .refine((s) => (s.check === undefined) !== (s.foreignKey === undefined), {
    error: 'give either check (an SQL condition) or foreignKey',
  });
