/**
 * The backfill's throttle, stored in `cutover.backfill_control` (one row per plan), so whoever
 * drives the migration (the workflow, through the backfillControl activity, or an operator with
 * psql) can pause, resume and re-throttle a running backfill: the running activity reads the
 * row between batches. A row in the database, rather than state inside the worker, reaches
 * every parallel range activity on every worker, and survives a worker restart.
 */
import type pg from 'pg';
import { withLockRetry } from '../db/lock-timeout';
import type { BackfillThrottle } from './core';

const DDL = `
  CREATE SCHEMA IF NOT EXISTS cutover;
  CREATE TABLE IF NOT EXISTS cutover.backfill_control (
    plan            text PRIMARY KEY,
    batch_size      integer CHECK (batch_size > 0),
    sleep_ms        integer CHECK (sleep_ms >= 0),
    paused          boolean,
    adaptive        boolean,
    target_batch_ms integer CHECK (target_batch_ms > 0),
    min_batch_size  integer CHECK (min_batch_size > 0),
    max_sleep_ms    integer CHECK (max_sleep_ms >= 0),
    load_budget     boolean,
    updated_at      timestamptz NOT NULL DEFAULT now()
  );
  ALTER TABLE cutover.backfill_control ADD COLUMN IF NOT EXISTS load_budget boolean`;

export async function ensureControlTable(client: pg.ClientBase): Promise<void> {
  // Up to date when the newest column is there (tables made by older versions lack it).
  const exists = await client.query<{ ok: boolean }>(
    `SELECT EXISTS (SELECT 1 FROM pg_attribute
                     WHERE attrelid = to_regclass('cutover.backfill_control')
                       AND attname = 'load_budget' AND NOT attisdropped) AS ok`,
  );
  if (exists.rows[0]!.ok) return;
  await withLockRetry(client, async () => {
    try {
      await client.query(DDL);
    } catch (err) {
      // Two workers (or parallel range activities) creating it at once: the loser sees a
      // duplicate, of the table or of its row type (42710); the table is there.
      const code = (err as { code?: string }).code;
      if (code !== '23505' && code !== '42P07' && code !== '42P06' && code !== '42710') throw err;
    }
  });
}

const COLUMNS: [keyof BackfillThrottle, string][] = [
  ['batchSize', 'batch_size'],
  ['sleepMs', 'sleep_ms'],
  ['paused', 'paused'],
  ['adaptive', 'adaptive'],
  ['targetBatchMs', 'target_batch_ms'],
  ['minBatchSize', 'min_batch_size'],
  ['maxSleepMs', 'max_sleep_ms'],
  ['loadBudget', 'load_budget'],
];

/** Upserts the given settings (others keep their value) and returns the full stored row. */
export async function setBackfillControl(
  client: pg.ClientBase,
  plan: string,
  settings: Partial<BackfillThrottle>,
): Promise<Partial<BackfillThrottle>> {
  await ensureControlTable(client);
  const given = COLUMNS.filter(([k]) => settings[k] !== undefined);
  const params: unknown[] = [plan, ...given.map(([k]) => settings[k])];
  const cols = given.map(([, c]) => c);
  const sets = cols.map((c) => `${c} = EXCLUDED.${c}`);
  await client.query(
    `INSERT INTO cutover.backfill_control (plan${cols.map((c) => `, ${c}`).join('')})
     VALUES ($1${given.map((_, i) => `, $${i + 2}`).join('')})
     ON CONFLICT (plan) DO UPDATE SET ${[...sets, 'updated_at = now()'].join(', ')}`,
    params,
  );
  return (await readBackfillControl(client, plan)) ?? {};
}

/** The stored settings (only those set), or null when there is no row / no table. */
export async function readBackfillControl(
  client: pg.ClientBase,
  plan: string,
): Promise<Partial<BackfillThrottle> | null> {
  const exists = await client.query<{ ok: boolean }>(
    `SELECT to_regclass('cutover.backfill_control') IS NOT NULL AS ok`,
  );
  if (!exists.rows[0]!.ok) return null;
  const r = await client.query<Record<string, unknown>>(
    `SELECT * FROM cutover.backfill_control WHERE plan = $1`,
    [plan],
  );
  const row = r.rows[0];
  if (!row) return null;
  const out: Record<string, unknown> = {};
  for (const [k, c] of COLUMNS) if (row[c] !== null && row[c] !== undefined) out[k] = row[c];
  return out as Partial<BackfillThrottle>;
}

export async function clearBackfillControl(client: pg.ClientBase, plan: string): Promise<void> {
  const exists = await client.query<{ ok: boolean }>(
    `SELECT to_regclass('cutover.backfill_control') IS NOT NULL AS ok`,
  );
  if (exists.rows[0]!.ok)
    await client.query(`DELETE FROM cutover.backfill_control WHERE plan = $1`, [plan]);
}
