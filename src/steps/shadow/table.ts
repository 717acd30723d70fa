/**
 * Step kind `shadow` (+ `index`): the new table.
 *
 * The table is created from the plan's DDL with only its primary key (and the unique index on the
 * change's key, which the backfill's ON CONFLICT needs); secondary indexes and constraints are
 * built after the backfill, which copies about 1.35× faster than into a fully indexed table.
 *
 * How the deferred list is derived: the plan's DDL runs for real inside the creating transaction;
 * then the catalog is read (pg_get_indexdef / pg_get_constraintdef print each index and
 * constraint exactly as PostgreSQL understood it, whatever syntax the DDL used: inline UNIQUE,
 * LIKE … INCLUDING ALL, separate CREATE INDEX, ALTER TABLE ADD CONSTRAINT), those objects are
 * dropped in the same transaction (the table is empty, so that is instant) and their definitions
 * are stored as JSON in the table's comment. A retried activity, the index build and the undo all
 * read that marker, so nothing depends on the workflow carrying the list, and undo never drops a
 * table cutover did not create.
 */
import { ApplicationFailure } from '@temporalio/common';
import type { ClientBase } from 'pg';
import { quoteIdent, quoteQualified } from '../../db/ident';
import { defaultLockRetry, type LockRetryOptions, withLockRetry } from '../../db/lock-timeout';
import {
  activityContext,
  heartbeat,
  inTransaction,
  whileHeartbeating,
  withConnection,
} from '../../temporal/activity';
import { LoadGovernor, resolveLoadBudget } from '../../backfill/load-budget';
import { type DeferredObject, deferrableObjects, tableComment, tableOid } from '../../plan/catalog';
import { executeTargetDdl } from '../../plan/ddl';
import type { ResolvedPlan } from '../../plan/resolved';
import type { TableRef } from '../../plan/types';
import { alignSequences } from '../../swap/finish';

export interface ShadowOptions {
  /** Use this client instead of opening one from the plan's named connection. */
  client?: ClientBase;
  lock?: Partial<LockRetryOptions>;
}

export interface ShadowMarker {
  cutover: 'shadow';
  plan: string;
  deferred: DeferredObject[];
}

export interface ShadowResult {
  /** False when the table was already there from an earlier attempt of this plan. */
  created: boolean;
  deferred: DeferredObject[];
}

const qualified = (t: TableRef) => quoteQualified(t.schema, t.table);

function parseMarker(comment: string | null): ShadowMarker | undefined {
  if (!comment) return undefined;
  try {
    const m = JSON.parse(comment) as Partial<ShadowMarker>;
    return m.cutover === 'shadow' && typeof m.plan === 'string' && Array.isArray(m.deferred)
      ? (m as ShadowMarker)
      : undefined;
  } catch {
    return undefined;
  }
}

/** The marker on the target table: 'absent' (no table), a marker, or 'foreign' (not ours). */
async function targetState(
  client: ClientBase,
  plan: ResolvedPlan,
): Promise<'absent' | 'foreign' | ShadowMarker> {
  const oid = await tableOid(client, plan.change.target);
  if (oid === null) return 'absent';
  const marker = parseMarker(await tableComment(client, oid));
  return marker && marker.plan === plan.change.name ? marker : 'foreign';
}

function foreignTable(plan: ResolvedPlan): ApplicationFailure {
  const t = plan.change.target;
  return ApplicationFailure.nonRetryable(
    `table ${t.schema}.${t.table} exists but was not created by cutover plan "${plan.change.name}": choose another target table name, or drop it yourself if it is a leftover`,
    'ShadowTableExists',
  );
}

/** Read-only: the DDL still applies and the target name is free (or already ours). */
export async function shadowValidate(
  plan: ResolvedPlan,
  options: ShadowOptions = {},
): Promise<{ deferred: DeferredObject[]; exists: boolean }> {
  return withConnection(
    { connection: plan.change.connection, client: options.client },
    'cutover-shadow',
    async (client) => {
      // Rolled back: the DDL runs for real only to read the catalog it produces.
      return inTransaction(
        client,
        async () => {
          await client.query(`SELECT set_config('lock_timeout', $1, true)`, [
            `${options.lock?.lockTimeoutMs ?? defaultLockRetry.lockTimeoutMs}ms`,
          ]);
          if ((await tableOid(client, plan.change.source)) === null)
            throw ApplicationFailure.nonRetryable(
              `source table ${plan.change.source.schema}.${plan.change.source.table} does not exist`,
              'SourceTableMissing',
            );
          const state = await targetState(client, plan);
          if (state === 'foreign') throw foreignTable(plan);
          if (state !== 'absent') return { deferred: state.deferred, exists: true };
          await executeTargetDdl(client, plan.change.target.schema, plan.targetDdl);
          const oid = (await tableOid(client, plan.change.target))!;
          return {
            deferred: await deferrableObjects(client, oid, plan.change.targetKey),
            exists: false,
          };
        },
        { rollback: true },
      );
    },
  );
}

/**
 * Creates the new table with its key only, under lock_timeout with retries. Idempotent: when an
 * earlier attempt already created it, returns the recorded deferred list.
 */
export async function shadowRun(
  plan: ResolvedPlan,
  options: ShadowOptions = {},
): Promise<ShadowResult> {
  const target = plan.change.target;
  return withConnection(
    { connection: plan.change.connection, client: options.client },
    'cutover-shadow',
    (client) =>
      withLockRetry(
        client,
        () =>
          inTransaction(client, async () => {
            const state = await targetState(client, plan);
            if (state === 'foreign') throw foreignTable(plan);
            if (state !== 'absent') return { created: false, deferred: state.deferred };
            await executeTargetDdl(client, target.schema, plan.targetDdl);
            const oid = (await tableOid(client, target))!;
            const deferred = await deferrableObjects(client, oid, plan.change.targetKey);
            for (const d of deferred.filter((x) => x.kind !== 'index'))
              await client.query(
                `ALTER TABLE ${qualified(target)} DROP CONSTRAINT ${quoteIdent(d.name)}`,
              );
            for (const d of deferred.filter((x) => x.kind === 'index'))
              await client.query(`DROP INDEX ${quoteQualified(target.schema, d.name)}`);
            // Inserts into the new table (routed ones, or after the swap) draw from the old
            // table's sequences from the first one on, so no key is handed out twice.
            await alignSequences(client, plan.change.source, target);
            const marker: ShadowMarker = { cutover: 'shadow', plan: plan.change.name, deferred };
            // COMMENT takes no bind parameters; format(%L) quotes the literal server-side.
            const { rows } = await client.query<{ sql: string }>(
              `SELECT format('COMMENT ON TABLE %s IS %L', $1::text, $2::text) AS sql`,
              [qualified(target), JSON.stringify(marker)],
            );
            await client.query(rows[0]!.sql);
            return { created: true, deferred };
          }),
        options.lock,
      ),
  );
}

export interface IndexBuildResult {
  built: string[];
  /** Already present and valid (an earlier attempt built them). */
  skipped: string[];
  /** INVALID leftovers of an interrupted CONCURRENTLY build, dropped and built again. */
  rebuilt: string[];
}

async function indexValidity(
  client: ClientBase,
  schema: string,
  name: string,
): Promise<boolean | undefined> {
  const { rows } = await client.query<{ valid: boolean }>(
    `SELECT i.indisvalid AS valid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       JOIN pg_index i ON i.indexrelid = c.oid WHERE n.nspname = $1 AND c.relname = $2`,
    [schema, name],
  );
  return rows[0]?.valid;
}

async function constraintState(
  client: ClientBase,
  target: TableRef,
  name: string,
): Promise<{ validated: boolean } | undefined> {
  const { rows } = await client.query<{ validated: boolean }>(
    `SELECT k.convalidated AS validated FROM pg_constraint k
       JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND c.relname = $2 AND k.conname = $3`,
    [target.schema, target.table, name],
  );
  return rows[0];
}

/**
 * Builds the deferred indexes and constraints after the backfill: CREATE INDEX CONCURRENTLY one
 * statement per round trip (never inside a transaction), UNIQUE constraints attached to their
 * concurrently built index, CHECK and FOREIGN KEY added NOT VALID then VALIDATEd. Idempotent:
 * what exists is skipped, INVALID leftovers are dropped and rebuilt.
 */
export async function shadowBuildIndexes(
  plan: ResolvedPlan,
  options: ShadowOptions = {},
): Promise<IndexBuildResult> {
  const target = plan.change.target;
  const result: IndexBuildResult = { built: [], skipped: [], rebuilt: [] };
  return withConnection(
    { connection: plan.change.connection, client: options.client },
    'cutover-index',
    async (client) => {
      const state = await targetState(client, plan);
      if (state === 'absent' || state === 'foreign')
        throw ApplicationFailure.nonRetryable(
          `table ${target.schema}.${target.table} is ${state === 'absent' ? 'missing' : 'not a cutover shadow table'}: run the shadow step first`,
          'ShadowTableMissing',
        );
      const lock = options.lock;
      // The backfill's load budget governs the builds too: an index build competes with the
      // application for I/O and CPU like a batch does, but cannot be slowed once started, so
      // each build waits for its turn (critical load: until below) and the pause after it
      // follows the duty cycle.
      const budget = resolveLoadBudget(plan.backfill.loadBudget);
      const governor = budget?.enabled
        ? new LoadGovernor(client, budget, {
            isCancelled: () => Boolean(activityContext()?.cancellationSignal.aborted),
            onHold: (t) => heartbeat({ building: null, throttled: t.reason }),
          })
        : null;
      const run = async (name: string, sql: string) => {
        await governor?.admit();
        const t0 = performance.now();
        await whileHeartbeating({ building: name }, () =>
          withLockRetry(client, () => client.query(sql), lock),
        );
        await governor?.afterWork(performance.now() - t0, 1);
      };

      /** Ensures a valid index named `name`; true when it had to build it. */
      const ensureIndex = async (
        name: string,
        definition: string,
      ): Promise<'built' | 'skipped' | 'rebuilt'> => {
        const valid = await indexValidity(client, target.schema, name);
        if (valid === true) return 'skipped';
        if (valid === false)
          await run(
            name,
            `DROP INDEX CONCURRENTLY IF EXISTS ${quoteQualified(target.schema, name)}`,
          );
        await run(
          name,
          definition.replace(/^CREATE (UNIQUE )?INDEX /, 'CREATE $1INDEX CONCURRENTLY '),
        );
        return valid === false ? 'rebuilt' : 'built';
      };
      const record = (name: string, outcome: 'built' | 'skipped' | 'rebuilt') =>
        result[outcome].push(name);

      for (const d of state.deferred) {
        if (d.kind === 'index') {
          record(d.name, await ensureIndex(d.name, d.definition));
        } else if (d.kind === 'unique') {
          if (await constraintState(client, target, d.name)) {
            record(d.name, 'skipped');
            continue;
          }
          const outcome = await ensureIndex(d.name, d.definition);
          await run(
            d.name,
            `ALTER TABLE ${qualified(target)} ADD CONSTRAINT ${quoteIdent(d.name)} UNIQUE USING INDEX ${quoteIdent(d.name)}`,
          );
          record(d.name, outcome === 'skipped' ? 'built' : outcome);
        } else if (d.kind === 'check' || d.kind === 'foreign') {
          const existing = await constraintState(client, target, d.name);
          if (existing && (existing.validated || !d.validate)) {
            record(d.name, 'skipped');
            continue;
          }
          if (!existing)
            await run(
              d.name,
              `ALTER TABLE ${qualified(target)} ADD CONSTRAINT ${quoteIdent(d.name)} ${d.definition} NOT VALID`,
            );
          if (d.validate)
            await run(
              d.name,
              `ALTER TABLE ${qualified(target)} VALIDATE CONSTRAINT ${quoteIdent(d.name)}`,
            );
          record(d.name, 'built');
        } else {
          if (await constraintState(client, target, d.name)) {
            record(d.name, 'skipped');
            continue;
          }
          await run(
            d.name,
            `ALTER TABLE ${qualified(target)} ADD CONSTRAINT ${quoteIdent(d.name)} ${d.definition}`,
          );
          record(d.name, 'built');
        }
      }
      return result;
    },
  );
}

/** Drops the new table if (and only if) this plan created it. Idempotent. */
export async function shadowUndo(
  plan: ResolvedPlan,
  options: ShadowOptions = {},
): Promise<{ dropped: boolean; note?: string }> {
  const target = plan.change.target;
  return withConnection(
    { connection: plan.change.connection, client: options.client },
    'cutover-shadow',
    (client) =>
      withLockRetry(
        client,
        () =>
          inTransaction(client, async () => {
            const state = await targetState(client, plan);
            if (state === 'absent') return { dropped: false, note: 'already gone' };
            if (state === 'foreign')
              return {
                dropped: false,
                note: `${target.schema}.${target.table} was not created by this plan; left in place`,
              };
            await client.query(`DROP TABLE ${qualified(target)}`);
            return { dropped: true };
          }),
        options.lock,
      ),
  );
}

/** Activity functions for the worker's registry. */
export const shadowActivities = {
  shadowValidate: (plan: ResolvedPlan) => shadowValidate(plan),
  shadowRun: (plan: ResolvedPlan) => shadowRun(plan),
  shadowBuildIndexes: (plan: ResolvedPlan) => shadowBuildIndexes(plan),
  shadowUndo: (plan: ResolvedPlan) => shadowUndo(plan),
};
