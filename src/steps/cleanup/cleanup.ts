/**
 * The last stage, the point of no return: once the rollback window has passed, stop syncing and
 * retire the old table. After a swap that means dropping the reverse sync (the archive stops
 * following the new table) and keeping the archive, or dropping it after the retention period.
 * A plan without a swap step (an application that uses the new name) archives the old table
 * the old way, but atomically: the last sync debt is settled, the triggers go and the table is
 * renamed in ONE transaction, so no committed write can reach only one of the tables.
 */
import type { ClientBase } from 'pg';
import { UserError } from '../../errors';
import { quoteIdent, quoteQualified } from '../../db/ident';
import { withLockRetry } from '../../db/lock-timeout';
import type { ResolvedPlan } from '../../plan/resolved';
import { dropArchive } from '../../swap/finish';
import { readSwapRecord } from '../../swap/swap';
import { inTransaction, withConnection } from '../../temporal/activity';
import { swapFinish } from '../swap/swap';
import { clearSyncDebt, drainSyncDebt } from '../sync/debt';
import { syncNames } from '../sync/names';
import { buildTruncateGuardSql } from '../sync/triggers';

/** The old table's archive name when no name was given (runs recorded before swaps existed). */
export function archiveName(plan: Pick<ResolvedPlan, 'change'>): string {
  return `${plan.change.source.table.slice(0, 63 - '_archived'.length)}_archived`;
}

const withClient = <T>(plan: ResolvedPlan, work: (c: ClientBase) => Promise<T>) =>
  withConnection(plan.change.connection, 'cutover-cleanup', work);

export async function cleanupRun(input: {
  plan: ResolvedPlan;
  oldTable: 'archive' | 'drop';
  /** The archive's name: the swap's, or a unique one chosen by the workflow. */
  archive?: string;
}): Promise<{ archivedAs: string | null }> {
  const { plan } = input;
  const { change } = plan;
  const { source, target } = change;
  const record = await withClient(plan, (c) => readSwapRecord(c, change.name));
  if (record && record.state !== 'back' && (!input.archive || input.archive === record.archive)) {
    const done = await swapFinish({
      change,
      archive: record.archive,
      lockTimeoutMs: 3000,
      directions: 'both',
      ...(record.mode === 'rename' ? { mode: 'rename' as const } : {}),
    });
    return { archivedAs: done?.archive ?? null };
  }
  const archive = input.archive ?? archiveName(plan);
  const names = syncNames(change);
  const truncateGuard = buildTruncateGuardSql(change);
  const oldT = quoteQualified(source.schema, source.table);
  const newT = quoteQualified(target.schema, target.table);
  return withClient(plan, async (client) => {
    await withLockRetry(client, () =>
      inTransaction(client, async () => {
        const { rows } = await client.query<{ present: boolean; taken: boolean }>(
          `SELECT to_regclass($1) IS NOT NULL AS present, to_regclass($2) IS NOT NULL AS taken`,
          [oldT, quoteQualified(source.schema, archive)],
        );
        // Idempotent: a retried activity finds the table already renamed.
        if (rows[0]!.present) {
          if (rows[0]!.taken)
            throw new UserError(
              `${source.schema}.${archive} already exists: the old table cannot be archived under that name (nothing was changed; drop or rename that table, then run again)`,
            );
          await client.query(`LOCK TABLE ${oldT}, ${newT} IN ACCESS EXCLUSIVE MODE`);
          // Nothing writes either table now: settle what the triggers could not copy exactly.
          await drainSyncDebt(client, change, { inTransaction: true });
          await client.query(
            `DROP TRIGGER IF EXISTS ${quoteIdent(names.forwardTrigger)} ON ${oldT}`,
          );
          await client.query(truncateGuard.dropTriggers[0]!);
          await client.query(`ALTER TABLE ${oldT} RENAME TO ${quoteIdent(archive)}`);
        }
        await client.query(`DROP TRIGGER IF EXISTS ${quoteIdent(names.reverseTrigger)} ON ${newT}`);
        await client.query(truncateGuard.dropTriggers[1]!);
        await client.query(
          `DROP FUNCTION IF EXISTS ${quoteQualified(source.schema, names.forwardFunction)}()`,
        );
        await client.query(
          `DROP FUNCTION IF EXISTS ${quoteQualified(target.schema, names.reverseFunction)}()`,
        );
        await client.query(truncateGuard.dropFunction);
        await clearSyncDebt(client, change.name);
      }),
    );
    return { archivedAs: `${source.schema}.${archive}` };
  });
}

export async function cleanupDropArchive(input: {
  plan: ResolvedPlan;
  archive?: string;
}): Promise<void> {
  const { plan } = input;
  await withClient(plan, async (client) => {
    const record = await readSwapRecord(client, plan.change.name);
    if (record && (!input.archive || record.archive === input.archive)) {
      await dropArchive(client, plan.change.name);
      return;
    }
    await withLockRetry(client, () =>
      client.query(
        `DROP TABLE IF EXISTS ${quoteQualified(plan.change.source.schema, input.archive ?? archiveName(plan))}`,
      ),
    );
  });
}
