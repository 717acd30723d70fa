/** Step kind `verify`, plan side: no fields of its own (its settings, if any, are plan-wide). */
import { z } from 'zod';
import { stepName } from '../../plan/fields';

export const schema = z.strictObject({ kind: z.literal('verify'), name: stepName.optional() });
