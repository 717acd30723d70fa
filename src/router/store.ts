import type { ClientBase } from 'pg';
import { withLockRetry } from '../db/lock-timeout';

/**
 * The route ledger: one row per migration in cutover.routes, holding the percent of traffic
 * sent to the new table and a version that grows with every change. A change is announced on
 * the cutover_route channel in the same transaction, so a listener never hears of a change
 * that did not commit, and never misses one that did (it re-reads after reconnecting).
 */
export const ROUTE_CHANNEL = 'cutover_route';
export const ROUTE_TABLE = 'cutover.routes';

export interface Route {
  migration: string;
  percent: number;
  version: number;
  updatedAt: Date;
  /** True once the swap gave the new table the original name (until a swap-back). */
  swapped: boolean;
}

/** The NOTIFY payload. */
export interface RouteNotice {
  migration: string;
  percent: number;
  version: number;
  /** Absent in notices of older versions: read as false. */
  swapped?: boolean;
}

export interface RouteChange {
  migration: string;
  previous: number;
  percent: number;
  version: number;
  /** False when the route already had this percent (nothing written, nothing announced). */
  changed: boolean;
  /**
   * True while a swap has given the new table the original name (the route row's flag), so an
   * external router told after the swap knows which name holds the data.
   */
  swapped: boolean;
}

const DDL = `
CREATE SCHEMA IF NOT EXISTS cutover;
CREATE TABLE IF NOT EXISTS cutover.routes (
  migration   text PRIMARY KEY,
  percent_new integer NOT NULL CHECK (percent_new BETWEEN 0 AND 100),
  version     bigint NOT NULL,
  updated_at  timestamptz NOT NULL DEFAULT now(),
  swapped     boolean NOT NULL DEFAULT false
);
COMMENT ON TABLE cutover.routes IS 'cutover traffic routes: percent of keys sent to the new table, per migration';
`;

/** Creates the schema and the routes table if they are missing. Safe to run concurrently. */
export async function ensureRouteTable(client: ClientBase): Promise<void> {
  // The common case: already there. Skipping the DDL then avoids taking any lock at all.
  const exists = await client.query(`SELECT to_regclass('cutover.routes') IS NOT NULL AS ok`);
  if (exists.rows[0]?.ok) return;
  for (let attempt = 1; ; attempt++) {
    try {
      await withLockRetry(client, async () => {
        await client.query('BEGIN');
        try {
          await client.query(DDL);
          await client.query('COMMIT');
        } catch (err) {
          await client.query('ROLLBACK');
          throw err;
        }
      });
      return;
    } catch (err) {
      // Two sessions racing on IF NOT EXISTS can collide on the catalog's unique index, or on
      // the table's row type (42710); the loser sees the winner's table on the next try.
      const code = (err as { code?: string }).code;
      if (attempt < 3 && ['23505', '42P06', '42P07', '42710'].includes(code ?? '')) continue;
      throw err;
    }
  }
}

function rowToRoute(r: {
  migration: string;
  percent_new: number;
  version: string;
  updated_at: Date;
  swapped: boolean | null;
}): Route {
  return {
    migration: r.migration,
    percent: r.percent_new,
    version: Number(r.version),
    updatedAt: r.updated_at,
    swapped: r.swapped === true,
  };
}

/** The stored route, or undefined when none was ever set (or the table does not exist yet). */
export async function getRoute(
  client: Pick<ClientBase, 'query'>,
  migration: string,
): Promise<Route | undefined> {
  try {
    const res = await client.query(
      // to_jsonb: a routes table created before the swapped column existed still reads.
      `SELECT migration, percent_new, version, updated_at, (to_jsonb(r) ->> 'swapped')::boolean AS swapped
         FROM cutover.routes r WHERE migration = $1`,
      [migration],
    );
    return res.rows[0] ? rowToRoute(res.rows[0]) : undefined;
  } catch (err) {
    if (isUndefinedTable(err)) return undefined;
    throw err;
  }
}

export function isUndefinedTable(err: unknown): boolean {
  const code = (err as { code?: string }).code;
  return code === '42P01' || code === '3F000';
}

export function assertPercent(percent: number): void {
  if (!Number.isInteger(percent) || percent < 0 || percent > 100) {
    throw new RangeError(`route percent must be an integer from 0 to 100, got ${percent}`);
  }
}

/**
 * Sets the percent of a migration's traffic that goes to the new table, bumps the version and
 * announces the change, all in one transaction. `beforeCommit` runs inside that transaction
 * with the new version (an external router is called there: when it fails, nothing changes).
 * Setting the percent a route already has writes and announces nothing.
 */
export async function setRoute(
  client: ClientBase,
  migration: string,
  percent: number,
  beforeCommit?: (change: RouteChange) => Promise<void>,
): Promise<RouteChange> {
  assertPercent(percent);
  await ensureRouteTable(client);
  await client.query('BEGIN');
  try {
    await client.query(
      `INSERT INTO cutover.routes (migration, percent_new, version) VALUES ($1, 0, 0)
       ON CONFLICT (migration) DO NOTHING`,
      [migration],
    );
    const cur = await client.query(
      `SELECT percent_new, version, (to_jsonb(r) ->> 'swapped')::boolean AS swapped
         FROM cutover.routes r WHERE migration = $1 FOR UPDATE`,
      [migration],
    );
    const previous: number = cur.rows[0].percent_new;
    let change: RouteChange;
    if (previous === percent) {
      change = {
        migration,
        previous,
        percent,
        version: Number(cur.rows[0].version),
        changed: false,
        swapped: cur.rows[0].swapped === true,
      };
    } else {
      const upd = await client.query(
        `UPDATE cutover.routes SET percent_new = $2, version = version + 1, updated_at = now()
         WHERE migration = $1 RETURNING version`,
        [migration, percent],
      );
      change = {
        migration,
        previous,
        percent,
        version: Number(upd.rows[0].version),
        changed: true,
        swapped: cur.rows[0].swapped === true,
      };
      const notice: RouteNotice = {
        migration,
        percent,
        version: change.version,
        swapped: cur.rows[0].swapped === true,
      };
      await client.query('SELECT pg_notify($1, $2)', [ROUTE_CHANNEL, JSON.stringify(notice)]);
    }
    if (beforeCommit) await beforeCommit(change);
    await client.query('COMMIT');
    return change;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  }
}
