/**
 * Compiles or tries a statement without leaving a trace, inside or outside a transaction: under
 * a savepoint when a transaction is open (the read-only plan check runs in one that it rolls
 * back), else on its own. Every read-only "does this SQL compile here" question goes through it.
 */
import type { ClientBase } from 'pg';

/** Runs `sql`; returns PostgreSQL's error message, or null when it ran. */
export async function probe(client: ClientBase, sql: string): Promise<string | null> {
  let savepoint = true;
  try {
    await client.query('SAVEPOINT cutover_probe');
  } catch (err) {
    // 25P01 no_active_sql_transaction: not inside a transaction, so nothing to protect.
    if ((err as { code?: string }).code !== '25P01') throw err;
    savepoint = false;
  }
  try {
    await client.query(sql);
    return null;
  } catch (err) {
    return (err as Error).message;
  } finally {
    if (savepoint) await client.query('ROLLBACK TO SAVEPOINT cutover_probe');
  }
}
