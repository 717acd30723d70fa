/** Step kind `rename`, plan side: the same settings as the swap's. */
import { z } from 'zod';
import { int, requiredString, stepName } from '../../plan/fields';

export const schema = z.strictObject({
  kind: z.literal('rename'),
  name: stepName.optional(),
  /** The old table's name after the rename; default `<table>_old_<run start, yyyymmddhhmmss>`. */
  archive: requiredString('a table name')
    .min(1)
    .max(63)
    .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, { error: 'use letters, digits and _ only' })
    .optional(),
  lockTimeoutMs: int('lock_timeout of each rename attempt, in milliseconds', 50, 60_000).default(
    1000,
  ),
  maxWaitSeconds: int('seconds to keep trying before the rename gives up', 1, 7 * 86400).default(
    600,
  ),
});
