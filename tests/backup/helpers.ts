import type pg from 'pg';

/** Row count plus an order-independent-of-storage digest of every row, for equality checks. */
export async function tableDigest(
  pool: pg.Pool,
  table: string,
): Promise<{ rows: number; digest: string | null }> {
  const r = await pool.query<{ rows: string; digest: string | null }>(
    `SELECT count(*) AS rows, md5(string_agg(t::text, '|' ORDER BY t.id)) AS digest FROM ${table} t`,
  );
  return { rows: Number(r.rows[0]!.rows), digest: r.rows[0]!.digest };
}

export async function tableExists(pool: pg.Pool, table: string): Promise<boolean> {
  const r = await pool.query<{ ok: boolean }>('SELECT to_regclass($1) IS NOT NULL AS ok', [table]);
  return r.rows[0]!.ok;
}

/** Two small tables with a serial key, NULLs, unicode and a secondary index. */
export async function createSampleTables(pool: pg.Pool): Promise<void> {
  await pool.query(`
    CREATE TABLE accounts (
      id serial PRIMARY KEY,
      email text NOT NULL UNIQUE,
      balance numeric(12,2) NOT NULL DEFAULT 0,
      note text
    );
    CREATE INDEX accounts_balance_idx ON accounts (balance);
    INSERT INTO accounts (email, balance, note)
      SELECT 'user' || g || '@example.com', g * 1.5, CASE WHEN g % 3 = 0 THEN NULL ELSE 'ñote ' || g END
      FROM generate_series(1, 2000) g;
    CREATE TABLE events (
      id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      account_id int NOT NULL REFERENCES accounts (id),
      payload jsonb NOT NULL
    );
    INSERT INTO events (account_id, payload)
      SELECT 1 + g % 2000, jsonb_build_object('n', g, 'tags', jsonb_build_array('a', g::text))
      FROM generate_series(1, 5000) g;
  `);
}
