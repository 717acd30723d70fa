import type { TestDatabase } from './db';

/**
 * The table most workflow and end-to-end tests change: an orders table like the example app's
 * (integer key, so the standard plan widens it to bigint), with `rows` rows. Drops what an earlier
 * test in the same database left behind (archives of swaps included). created_at has a fixed default so fingerprints compare.
 */
export async function seedOrders(db: TestDatabase, rows: number): Promise<void> {
  await db.pool.query(`
    DO $$ DECLARE t text; BEGIN
      -- After a swap, orders_v2 is a view over the new table until cleanup; after a rename,
      -- orders is.
      FOR t IN SELECT relname FROM pg_class WHERE relkind = 'v' AND relnamespace = 'public'::regnamespace
                 AND relname IN ('orders_v2', 'orders')
      LOOP EXECUTE format('DROP VIEW public.%I', t); END LOOP;
      -- Archives of earlier swaps (orders_old_<time>) and the old cleanup's name.
      FOR t IN SELECT relname FROM pg_class WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace
                 AND (relname IN ('orders_v2', 'orders', 'orders_archived') OR relname LIKE 'orders\\_old\\_%')
      LOOP EXECUTE format('DROP TABLE IF EXISTS public.%I CASCADE', t); END LOOP; END $$;
    DROP SCHEMA IF EXISTS cutover CASCADE;
    CREATE TABLE orders (
      id integer PRIMARY KEY,
      customer text NOT NULL,
      amount_cents integer NOT NULL CHECK (amount_cents >= 0),
      created_at timestamptz NOT NULL DEFAULT '2024-01-01T00:00:00Z'
    );
    CREATE INDEX orders_customer_idx ON orders (customer);
    INSERT INTO orders (id, customer, amount_cents)
      SELECT g, 'customer-' || (g % 97), g * 10 FROM generate_series(1, ${Number(rows)}) g;`);
}

/** The widen-orders plan (orders.id int → bigint into orders_v2, two-way) with the given tail. */
export function widenPlanYaml(name: string, tail: string): string {
  return `name: ${name}
source: public.orders
target:
  table: orders_v2
  like: source
  alter:
    - ALTER TABLE orders_v2 ALTER COLUMN id TYPE bigint
mapping:
  up: {}
  down: {}
${tail}`;
}
