/** Step kind `index`, plan side: no fields of its own (its settings, if any, are plan-wide). */
import { z } from 'zod';
import { stepName } from '../../plan/fields';

export const schema = z.strictObject({ kind: z.literal('index'), name: stepName.optional() });
