/**
 * The last stage, the point of no return: once the rollback window has passed, stop syncing and
 * retire the old table. After a swap that means dropping the reverse sync (the archive stops
 * following the new table) and keeping the archive, or dropping it after the retention period.
 * A plan without a swap step (an application that uses the new name) archives the old table
 * the old way, but atomically: the triggers go and the table is renamed in ONE transaction, so
 * no committed write can reach only one of the tables.
 */
import { ApplicationFailure } from '@temporalio/common';
import { connectionUrl, openClient } from '../src/db/connect';
import { quoteIdent, quoteQualified } from '../src/db/ident';
import { withLockRetry } from '../src/db/lock-timeout';
import type { ResolvedPlan } from '../src/plan/resolved';
import { syncNames } from '../src/backfill/names';
import { readSwapRecord } from '../src/swap/swap';
import { dropArchive } from '../src/swap/finish';
import { swapFinish } from './swap';

/** The old table's archive name when no name was given (runs recorded before swaps existed). */
export function archiveName(plan: ResolvedPlan): string {
  return `${plan.change.source.table.slice(0, 63 - '_archived'.length)}_archived`;
}

async function withClient<T>(
  plan: ResolvedPlan,
  work: (c: import('pg').Client) => Promise<T>,
): Promise<T> {
  const client = await openClient(connectionUrl(plan.change.connection), 'cutover-cleanup');
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

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
    });
    return { archivedAs: done?.archive ?? null };
  }
  const archive = input.archive ?? archiveName(plan);
  const names = syncNames(change);
  return withClient(plan, async (client) => {
    await withLockRetry(client, async () => {
      await client.query('BEGIN');
      try {
        const { rows } = await client.query<{ present: boolean; taken: boolean }>(
          `SELECT to_regclass($1) IS NOT NULL AS present, to_regclass($2) IS NOT NULL AS taken`,
          [quoteQualified(source.schema, source.table), quoteQualified(source.schema, archive)],
        );
        // Idempotent: a retried activity finds the table already renamed.
        if (rows[0]!.present) {
          if (rows[0]!.taken)
            throw ApplicationFailure.nonRetryable(
              `${source.schema}.${archive} already exists: the old table cannot be archived under that name (nothing was changed; drop or rename that table, then run again)`,
              'ArchiveNameTaken',
            );
          await client.query(
            `LOCK TABLE ${quoteQualified(source.schema, source.table)}, ${quoteQualified(target.schema, target.table)} IN ACCESS EXCLUSIVE MODE`,
          );
          await client.query(
            `DROP TRIGGER IF EXISTS ${quoteIdent(names.forwardTrigger)} ON ${quoteQualified(source.schema, source.table)}`,
          );
          await client.query(
            `DROP TRIGGER IF EXISTS ${quoteIdent(names.reverseTrigger)} ON ${quoteQualified(target.schema, target.table)}`,
          );
          await client.query(
            `ALTER TABLE ${quoteQualified(source.schema, source.table)} RENAME TO ${quoteIdent(archive)}`,
          );
        }
        await client.query(
          `DROP FUNCTION IF EXISTS ${quoteQualified(source.schema, names.forwardFunction)}()`,
        );
        await client.query(
          `DROP FUNCTION IF EXISTS ${quoteQualified(target.schema, names.reverseFunction)}()`,
        );
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK').catch(() => {});
        throw err;
      }
    });
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
