/**
 * The last stage: once all traffic is on the new table and the rollback window has passed, stop
 * syncing and retire the old table (renamed to an archive, dropped after the retention period if
 * the plan says so). There is no undo: this is the point of no return, which is why the workflow
 * puts an approval gate and the rollback window in front of it.
 */
import type { ClientBase } from 'pg';
import { withConnection } from '../../temporal/activity';
import { quoteIdent, quoteQualified } from '../../db/ident';
import { withLockRetry } from '../../db/lock-timeout';
import type { ResolvedPlan } from '../../plan/resolved';
import { removeSync } from '../sync/triggers';

/** The old table's name after cleanup: <table>_archived, cut to PostgreSQL's 63-byte limit. */
export function archiveName(plan: Pick<ResolvedPlan, 'change'>): string {
  return `${plan.change.source.table.slice(0, 63 - '_archived'.length)}_archived`;
}

const withClient = <T>(plan: ResolvedPlan, work: (c: ClientBase) => Promise<T>) =>
  withConnection(plan.change.connection, 'cutover-cleanup', work);

export async function cleanupRun(input: {
  plan: ResolvedPlan;
  oldTable: 'archive' | 'drop';
}): Promise<{ archivedAs: string | null }> {
  const { plan } = input;
  const { source } = plan.change;
  return withClient(plan, async (client) => {
    await removeSync(client, { change: plan.change });
    const archive = archiveName(plan);
    // Idempotent: a retried activity finds the table already renamed.
    const r = await client.query(`SELECT to_regclass($1) IS NOT NULL AS present`, [
      quoteQualified(source.schema, source.table),
    ]);
    if (r.rows[0].present) {
      await withLockRetry(client, () =>
        client.query(
          `ALTER TABLE ${quoteQualified(source.schema, source.table)} RENAME TO ${quoteIdent(archive)}`,
        ),
      );
    }
    return { archivedAs: `${source.schema}.${archive}` };
  });
}

export async function cleanupDropArchive(input: { plan: ResolvedPlan }): Promise<void> {
  const { plan } = input;
  await withClient(plan, (client) =>
    withLockRetry(client, () =>
      client.query(
        `DROP TABLE IF EXISTS ${quoteQualified(plan.change.source.schema, archiveName(plan))}`,
      ),
    ),
  );
}
