import type { ClientBase } from 'pg';
import { quoteIdent } from '../db/ident';

/**
 * Runs the target table's statements one by one inside the caller's transaction, with the target
 * schema first on the search_path (transaction-local, restored afterwards) so unqualified names in
 * the plan's DDL land in the target's schema. `onError` gets the failing statement's index.
 */
export async function executeTargetDdl(
  client: ClientBase,
  schema: string,
  statements: string[],
): Promise<void> {
  const { rows } = await client.query<{ path: string }>(
    `SELECT current_setting('search_path') AS path`,
  );
  const original = rows[0]!.path;
  await client.query(`SELECT set_config('search_path', $1, true)`, [
    `${quoteIdent(schema)}, ${original}`,
  ]);
  try {
    for (const [i, sql] of statements.entries()) {
      try {
        await client.query(sql);
      } catch (err) {
        throw new TargetDdlError(i, err as Error);
      }
    }
  } finally {
    // After an error the transaction is aborted and this would fail too; the rollback restores it.
    await client.query(`SELECT set_config('search_path', $1, true)`, [original]).catch(() => {});
  }
}

export class TargetDdlError extends Error {
  override name = 'TargetDdlError';
  constructor(
    readonly statementIndex: number,
    readonly pgError: Error,
  ) {
    super(pgError.message);
  }
}
