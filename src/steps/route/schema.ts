/** Step kind `route`, plan side. */
import { z } from 'zod';
import { int, stepName } from '../../plan/fields';

export const schema = z.strictObject({
  kind: z.literal('route'),
  name: stepName.optional(),
  percent: int('percent of traffic to the new table', 0, 100),
});
