import pg from 'pg';

/**
 * Application writers for expand/contract tests: several clients inserting, updating and
 * deleting `items` rows (id bigserial, email text, n int) as new code would, until stopped.
 * Errors are counted, not thrown: a step that breaks the application shows up as errors > 0.
 */
export function startWriters(url: string, clients = 3, writeNewColumn?: string) {
  let stop = false;
  const errors: string[] = [];
  let ops = 0;
  const loops = Array.from({ length: clients }, async (_, w) => {
    const c = new pg.Client({ connectionString: url, application_name: `writer-${w}` });
    await c.connect();
    try {
      while (!stop) {
        const id = 1 + Math.floor(Math.random() * 20_000);
        const email = `User${id}-${ops}@Example.com`;
        try {
          const kind = ops % 10;
          if (kind < 6)
            await c.query(
              writeNewColumn
                ? `UPDATE items SET email = $2, ${writeNewColumn} = lower($2) WHERE id = $1`
                : `UPDATE items SET email = $2, n = n + 1 WHERE id = $1`,
              [id, email],
            );
          else if (kind < 9)
            await c.query(
              writeNewColumn
                ? `INSERT INTO items (email, n, ${writeNewColumn}) VALUES ($1, 1, lower($1))`
                : `INSERT INTO items (email, n) VALUES ($1, 1)`,
              [email],
            );
          else await c.query(`DELETE FROM items WHERE id = $1`, [id]);
        } catch (err) {
          errors.push((err as Error).message);
        }
        ops++;
      }
    } finally {
      await c.end();
    }
  });
  return {
    get ops() {
      return ops;
    },
    errors,
    async stop() {
      stop = true;
      await Promise.all(loops);
    },
  };
}

export async function createItems(pool: pg.Pool, rows = 20_000): Promise<void> {
  await pool.query(`DROP TABLE IF EXISTS items CASCADE;
    CREATE TABLE items (id bigserial PRIMARY KEY, email text NOT NULL, n int NOT NULL DEFAULT 0)`);
  await pool.query(
    `INSERT INTO items (email, n) SELECT 'User' || g || '@Example.com', g % 10 FROM generate_series(1, $1) g`,
    [rows],
  );
}
