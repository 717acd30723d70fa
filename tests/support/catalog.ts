import type { Queryable } from './queryable';

/**
 * A comparable picture of a database's user schema: tables, columns, indexes, constraints,
 * triggers, functions and schemas. Two equal snapshots mean "the schema is the same".
 */
export async function catalogSnapshot(db: Queryable): Promise<Record<string, string[]>> {
  const q = async (sql: string) =>
    (await db.query(sql)).rows.map((r) => Object.values(r).join('|'));
  const userSchemas = `NOT IN ('pg_catalog', 'information_schema', 'pg_toast')`;
  return {
    schemas: await q(
      `SELECT nspname FROM pg_namespace WHERE nspname ${userSchemas} AND nspname NOT LIKE 'pg_temp%' AND nspname NOT LIKE 'pg_toast_temp%' ORDER BY 1`,
    ),
    columns:
      await q(`SELECT table_schema, table_name, column_name, data_type, is_nullable, column_default
                        FROM information_schema.columns WHERE table_schema ${userSchemas} ORDER BY 1, 2, ordinal_position`),
    indexes: await q(
      `SELECT schemaname, tablename, indexname, indexdef FROM pg_indexes WHERE schemaname ${userSchemas} ORDER BY 1, 2, 3`,
    ),
    constraints:
      await q(`SELECT n.nspname, c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid), c.convalidated
                            FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
                           WHERE n.nspname ${userSchemas} ORDER BY 1, 2, 3`),
    triggers: await q(
      `SELECT tgrelid::regclass::text, tgname FROM pg_trigger WHERE NOT tgisinternal ORDER BY 1, 2`,
    ),
    functions:
      await q(`SELECT n.nspname, p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                         WHERE n.nspname ${userSchemas} ORDER BY 1, 2`),
    sequences: await q(
      `SELECT schemaname, sequencename FROM pg_sequences WHERE schemaname ${userSchemas} ORDER BY 1, 2`,
    ),
  };
}
