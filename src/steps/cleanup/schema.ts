/** Step kind `cleanup`, plan side. */
import { z } from 'zod';
import { int, stepName } from '../../plan/fields';

export const schema = z.strictObject({
  kind: z.literal('cleanup'),
  name: stepName.optional(),
  oldTable: z.enum(['archive', 'drop'], { error: 'must be archive or drop' }).default('archive'),
  retentionHours: int('hours to keep the old table before dropping it', 0, 365 * 24).default(168),
});
