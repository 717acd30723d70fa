import type pg from 'pg';
import { UserError } from '../errors';

/** Fixed key shared by every cutover runner; advisory locks are scoped to one database already. */
const LOCK_KEY = 0x63757476; // "cutv"

export interface LockOptions {
  /** Fail at once instead of waiting when another runner holds the lock. */
  noWait?: boolean;
  onWait?: (holder: string) => void;
}

/**
 * Takes the runner lock at SESSION level on the caller's dedicated connection. A transaction-
 * scoped lock would deadlock with CREATE INDEX CONCURRENTLY (which waits for every older
 * transaction, ours included), and a pooled connection could lose a session lock to another
 * borrower, so the caller keeps one client for the whole run.
 */
export async function acquireRunnerLock(client: pg.Client, opts: LockOptions = {}): Promise<void> {
  const got = await client.query(`SELECT pg_try_advisory_lock($1) AS ok`, [LOCK_KEY]);
  if (got.rows[0].ok) return;
  const holder = await describeHolder(client);
  if (opts.noWait) {
    throw new UserError(
      `another cutover runner holds the migration lock (${holder}); not waiting (--no-wait)`,
    );
  }
  opts.onWait?.(holder);
  await client.query(`SELECT pg_advisory_lock($1)`, [LOCK_KEY]);
}

export async function releaseRunnerLock(client: pg.Client): Promise<void> {
  await client.query(`SELECT pg_advisory_unlock($1)`, [LOCK_KEY]);
}

async function describeHolder(client: pg.Client): Promise<string> {
  const r = await client.query(
    `SELECT a.pid, a.application_name, a.client_addr, a.backend_start
       FROM pg_locks l JOIN pg_stat_activity a USING (pid)
      WHERE l.locktype = 'advisory' AND l.granted AND l.objid = $1 AND l.database = (
        SELECT oid FROM pg_database WHERE datname = current_database())
      LIMIT 1`,
    [LOCK_KEY],
  );
  const row = r.rows[0];
  if (!row) return 'holder unknown';
  return `pid ${row.pid}${row.application_name ? `, ${row.application_name}` : ''}${row.client_addr ? ` from ${row.client_addr}` : ''}`;
}
