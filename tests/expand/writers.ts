import pg from 'pg';

/** One application write of a loop; `ops` counts this loop's writes so far. */
export type ItemWrite = (c: pg.Client, at: { writer: number; ops: number }) => Promise<void>;

/**
 * `clients` application sessions repeating `write` until stopped. Errors are counted, not
 * thrown: a step that breaks the application shows up as errors > 0.
 */
export function startItemLoops(
  url: string,
  clients: number,
  write: ItemWrite,
  { app = 'writer', pauseMs = 0 }: { app?: string; pauseMs?: number } = {},
) {
  let stop = false;
  const errors: string[] = [];
  let ops = 0;
  const loops = Array.from({ length: clients }, async (_, writer) => {
    const c = new pg.Client({ connectionString: url, application_name: `${app}-${writer}` });
    await c.connect();
    try {
      while (!stop) {
        try {
          await write(c, { writer, ops });
        } catch (err) {
          errors.push((err as Error).message);
        }
        ops++;
        if (pauseMs) await new Promise((r) => setTimeout(r, pauseMs));
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

/**
 * Application writers for expand/contract tests: several clients inserting, updating and
 * deleting `items` rows (id bigserial, email text, n int) as new code would, until stopped.
 */
export function startWriters(url: string, clients = 3, writeNewColumn?: string) {
  return startItemLoops(url, clients, async (c, { ops }) => {
    const id = 1 + Math.floor(Math.random() * 20_000);
    const email = `User${id}-${ops}@Example.com`;
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
  });
}

/**
 * items_mirror follows the application's own writes to items only (not cutover's sessions): at
 * the end, items must hold exactly the mirror's rows, whatever the steps did to the table.
 */
export async function createItemsMirror(pool: pg.Pool): Promise<void> {
  await pool.query(`
    DROP TABLE IF EXISTS items_mirror;
    CREATE TABLE items_mirror AS SELECT id, email, n FROM items;
    CREATE OR REPLACE FUNCTION mirror_items() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF current_setting('application_name') LIKE 'cutover%' THEN RETURN NULL; END IF;
        IF TG_OP = 'DELETE' THEN DELETE FROM items_mirror WHERE id = OLD.id;
        ELSIF TG_OP = 'UPDATE' THEN
          UPDATE items_mirror SET id = NEW.id, email = NEW.email, n = NEW.n WHERE id = OLD.id;
        ELSE INSERT INTO items_mirror VALUES (NEW.id, NEW.email, NEW.n); END IF;
        RETURN NULL;
      END $$;
    CREATE TRIGGER mirror AFTER INSERT OR UPDATE OR DELETE ON items
      FOR EACH ROW EXECUTE FUNCTION mirror_items();`);
}

/** Rows of items and items_mirror that differ, both ways. */
export async function itemsMirrorDifferences(pool: pg.Pool): Promise<number> {
  const r = await pool.query<{ n: string }>(`SELECT
      (SELECT count(*) FROM (SELECT id, email, n FROM items EXCEPT ALL SELECT id, email, n FROM items_mirror) a)
    + (SELECT count(*) FROM (SELECT id, email, n FROM items_mirror EXCEPT ALL SELECT id, email, n FROM items) b) AS n`);
  return Number(r.rows[0]!.n);
}

export async function createItems(pool: pg.Pool, rows = 20_000): Promise<void> {
  await pool.query(`DROP TABLE IF EXISTS items CASCADE;
    CREATE TABLE items (id bigserial PRIMARY KEY, email text NOT NULL, n int NOT NULL DEFAULT 0)`);
  await pool.query(
    `INSERT INTO items (email, n) SELECT 'User' || g || '@Example.com', g % 10 FROM generate_series(1, $1) g`,
    [rows],
  );
}
