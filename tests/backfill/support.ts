import pg from 'pg';
import type { ResolvedChange } from '../../src/plan/types';

/**
 * A table change used across the sync and backfill tests: composite key (tenant, id), the
 * target re-types the key and balance to bigint and renames name → full_name.
 */
export function accountsChange(
  name = 'acct',
  connection = 'default',
  /** Key (id) alone, as most tables have: the backfill's one-statement batches apply. */
  singleKey = false,
): ResolvedChange {
  const key = singleKey ? ['id'] : ['tenant', 'id'];
  return {
    name,
    connection,
    source: { schema: 'public', table: 'accounts' },
    target: { schema: 'public', table: 'accounts_v2' },
    sourceKey: key,
    targetKey: key,
    up: [
      { column: 'tenant', expression: '"tenant"' },
      { column: 'id', expression: '"id"::bigint' },
      { column: 'full_name', expression: '"name"' },
      { column: 'balance', expression: '"balance"::bigint' },
      { column: 'note', expression: `coalesce("note", '')` },
    ],
    down: [
      { column: 'tenant', expression: '"tenant"' },
      { column: 'id', expression: '"id"::int' },
      { column: 'name', expression: '"full_name"' },
      { column: 'balance', expression: '"balance"::int' },
      { column: 'note', expression: `nullif("note", '')` },
    ],
  };
}

export async function createAccounts(
  pool: pg.Pool,
  rows: number,
  { singleKey = false }: { singleKey?: boolean } = {},
): Promise<void> {
  const pk = singleKey ? 'id' : 'tenant, id';
  await pool.query(`
    DROP TABLE IF EXISTS accounts_v2, accounts;
    CREATE TABLE accounts (tenant int NOT NULL, id int NOT NULL, name text NOT NULL,
                           balance int NOT NULL DEFAULT 0, note text,
                           PRIMARY KEY (${pk}));
    CREATE TABLE accounts_v2 (tenant int NOT NULL, id bigint NOT NULL, full_name text NOT NULL,
                              balance bigint NOT NULL DEFAULT 0, note text NOT NULL DEFAULT '',
                              PRIMARY KEY (${pk}));`);
  await pool.query(
    `INSERT INTO accounts SELECT g % 7, g, 'user ' || g, (g * 37) % 1000,
            CASE WHEN g % 3 = 0 THEN NULL ELSE 'n' || g END
       FROM generate_series(1, $1) g`,
    [rows],
  );
  await pool.query('ANALYZE accounts');
}

/** Rows that differ between the tables under the up mapping (EXCEPT ALL both ways). */
export async function mappingDifferences(pool: pg.Pool): Promise<number> {
  const r = await pool.query<{ n: string }>(`
    WITH a AS (SELECT tenant, id::bigint AS id, name AS full_name, balance::bigint AS balance,
                      coalesce(note, '') AS note FROM accounts),
         b AS (SELECT tenant, id, full_name, balance, note FROM accounts_v2)
    SELECT ((SELECT count(*) FROM (SELECT * FROM a EXCEPT ALL SELECT * FROM b) x)
          + (SELECT count(*) FROM (SELECT * FROM b EXCEPT ALL SELECT * FROM a) y))::text AS n`);
  const n = Number(r.rows[0]!.n);
  if (n > 0) {
    // A race shows up rarely; the rows themselves say which write path lost them.
    const rows = await pool.query(`
      WITH a AS (SELECT tenant, id::bigint AS id, name AS full_name, balance::bigint AS balance,
                        coalesce(note, '') AS note FROM accounts),
           b AS (SELECT tenant, id, full_name, balance, note FROM accounts_v2)
      (SELECT 'only in accounts' AS side, * FROM (SELECT * FROM a EXCEPT ALL SELECT * FROM b) x LIMIT 10)
      UNION ALL
      (SELECT 'only in accounts_v2', * FROM (SELECT * FROM b EXCEPT ALL SELECT * FROM a) y LIMIT 10)`);
    console.error('rows differing:', rows.rows);
  }
  return n;
}

export interface Workload {
  stop(): Promise<{ ops: number; errors: string[] }>;
}

const TOLERATED = new Set(['23505', '40P01', '40001']);

/**
 * Random INSERT / UPDATE (non-key and key) / DELETE in `connections` sessions until stopped.
 * Unique violations from random key choices and deadlocks are part of the game; anything else
 * is reported.
 */
export function startWorkload(url: string, connections: number, maxKey: number): Workload {
  let running = true;
  let ops = 0;
  const errors: string[] = [];
  const rnd = (n: number) => Math.floor(Math.random() * n);
  const worker = async () => {
    const c = new pg.Client({ connectionString: url, application_name: 'workload' });
    await c.connect();
    try {
      while (running) {
        const tenant = rnd(7);
        const id = 1 + rnd(maxKey);
        const op = rnd(10);
        try {
          if (op < 3)
            await c.query(
              `INSERT INTO accounts VALUES ($1, $2, $3, $4, 'ins') ON CONFLICT DO NOTHING`,
              [tenant, maxKey + rnd(maxKey), `new ${id}`, rnd(1000)],
            );
          else if (op < 6)
            await c.query(
              `UPDATE accounts SET balance = balance + 1, note = NULL WHERE tenant = $1 AND id = $2`,
              [id % 7, id],
            );
          else if (op < 8)
            await c.query(`UPDATE accounts SET id = $3 WHERE tenant = $1 AND id = $2`, [
              id % 7,
              id,
              2 * maxKey + rnd(maxKey),
            ]);
          else if (op < 9)
            await c.query(`DELETE FROM accounts WHERE tenant = $1 AND id = $2`, [id % 7, id]);
          else {
            // A multi-statement transaction mixing a delete and a re-insert of the same key.
            await c.query('BEGIN');
            await c.query(`DELETE FROM accounts WHERE tenant = $1 AND id = $2`, [id % 7, id]);
            await c.query(
              `INSERT INTO accounts VALUES ($1, $2, 'again', 1, NULL) ON CONFLICT DO NOTHING`,
              [id % 7, id],
            );
            await c.query('COMMIT');
          }
          ops++;
        } catch (err) {
          await c.query('ROLLBACK').catch(() => {});
          const code = (err as { code?: string }).code ?? '';
          if (!TOLERATED.has(code)) errors.push(`${code}: ${(err as Error).message}`);
        }
      }
    } finally {
      await c.end();
    }
  };
  const all = Promise.all(Array.from({ length: connections }, worker));
  return {
    async stop() {
      running = false;
      await all;
      return { ops, errors };
    },
  };
}
