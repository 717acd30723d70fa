import type { Queryable } from './queryable';

/** Small read-only probes of a database's state, shared by the workflow and end-to-end tests. */

export async function tableExists(db: { pool: Queryable }, name: string): Promise<boolean> {
  const r = await db.pool.query(`SELECT to_regclass($1) IS NOT NULL AS present`, [name]);
  return r.rows[0]!.present as boolean;
}

/** Non-internal triggers: after an undo or cleanup, cutover's sync triggers must be gone. */
export async function userTriggers(db: { pool: Queryable }): Promise<number> {
  const r = await db.pool.query(`SELECT count(*)::int AS n FROM pg_trigger WHERE NOT tgisinternal`);
  return r.rows[0]!.n as number;
}

/** The recorded route of a migration, or null when none was ever set. */
export async function routePercent(
  db: { pool: Queryable },
  migration: string,
): Promise<number | null> {
  if (!(await tableExists(db, 'cutover.routes'))) return null;
  const r = await db.pool.query(`SELECT percent_new FROM cutover.routes WHERE migration = $1`, [
    migration,
  ]);
  return r.rows[0] ? (r.rows[0].percent_new as number) : null;
}
