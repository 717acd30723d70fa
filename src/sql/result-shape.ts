/**
 * The shape of what a check query returns, learned without running it: `SELECT * FROM (<query>)
 * LIMIT 0` plans the query and reports its columns but fetches no row. A monitoring query with
 * two columns, or one returning text, fails on every tick of the first monitoring window, after
 * the backfill; `plan check` refuses it instead. Only for queries already proven read-only.
 */
import type { ClientBase } from 'pg';

/** pg type OIDs the monitor reads as a number: int2/4/8, oid, float4/8, numeric, bool. */
const NUMERIC_TYPES = new Set([20, 21, 23, 26, 700, 701, 1700, 16]);

/**
 * Null when `sql` returns exactly one column (and, when `numeric`, one of a number type),
 * else what is wrong and what to do. Runs inside the caller's transaction, under a savepoint.
 * (Verify sqlChecks compare the first column of the first row, so only monitoring queries, which
 * demand exactly one number, use this.)
 */
export async function resultShapeProblem(
  client: ClientBase,
  sql: string,
  numeric: boolean,
): Promise<string | null> {
  await client.query('SAVEPOINT cutover_shape');
  let fields: Array<{ name: string; dataTypeID: number }>;
  try {
    fields = (await client.query(`SELECT * FROM (${sql}\n) AS cutover_check LIMIT 0`)).fields;
  } catch {
    return null; // the compile check (EXPLAIN) reports why it does not run
  } finally {
    await client.query('ROLLBACK TO SAVEPOINT cutover_shape');
  }
  const want = numeric ? 'one row with one number' : 'one value';
  if (fields.length !== 1)
    return `returns ${fields.length} columns: a check compares one value; select ${want}`;
  if (numeric && !NUMERIC_TYPES.has(fields[0]!.dataTypeID))
    return `returns a non-numeric column "${fields[0]!.name}": the threshold compares a number; cast it (e.g. count(*)::int) or select a number`;
  return null;
}
