/** The batch migrations' own tables, in the cutover schema beside the migration history. */
import type pg from 'pg';

export const CHECKPOINTS = 'cutover.batch_checkpoints';
export const DEAD_LETTERS = 'cutover.batch_dead_letters';

export async function ensureBatchSchema(client: pg.ClientBase): Promise<void> {
  await client.query(`
    CREATE SCHEMA IF NOT EXISTS cutover;
    CREATE TABLE IF NOT EXISTS ${CHECKPOINTS} (
      migration text NOT NULL,
      range_no int NOT NULL,
      -- The range [start_key, end_key) this walker covers (null: open end), fixed at the first run.
      start_key jsonb,
      end_key jsonb,
      last_key jsonb,
      items bigint NOT NULL DEFAULT 0,
      done boolean NOT NULL DEFAULT false,
      updated_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (migration, range_no));
    CREATE TABLE IF NOT EXISTS ${DEAD_LETTERS} (
      migration text NOT NULL,
      key jsonb NOT NULL,
      error text NOT NULL,
      attempts int NOT NULL,
      at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (migration, key));`);
}
