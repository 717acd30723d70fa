/**
 * Step kind `batchMigrate`, I/O (library: src/batch/migrate.ts): streams the source by key in
 * batches, applies a per-row SQL mapping or a per-batch migrator module, each batch committed
 * with its checkpoint row (so a resumed attempt applies no item twice), failing items retried
 * and then dead-lettered with their key and error; a dry run applies and rolls back every batch.
 */
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { ClientBase } from 'pg';
import {
  planBatchMigration,
  runBatchMigration,
  verifyBatchMigration,
  type BatchMigrationSpec,
  type BatchProgress,
  type BatchVerification,
} from '../../batch/migrate';
import { CHECKPOINTS } from '../../batch/schema';
import { connectionUrl } from '../../db/connect';
import { UserError } from '../../errors';
import { withConnection } from '../../temporal/activity';
import { progressReporter } from '../../temporal/progress';
import type { ResolvedStepOf } from '../schemas';
import type { ValidateContext } from '../validate-context';
import { validating, type StepInput } from '../expand-io';

type Step = ResolvedStepOf<'batchMigrate'>;

export function specOf(s: Step): BatchMigrationSpec {
  return {
    name: s.migration,
    source: { table: s.source.table, ...(s.source.where ? { where: s.source.where } : {}) },
    ...(s.target ? { target: s.target } : {}),
    ...(s.module ? { module: s.module } : {}),
    batchSize: s.batchSize,
    concurrency: s.concurrency,
    itemAttempts: s.itemAttempts,
    dryRun: s.dryRun,
  };
}

/** Compiles the mapping (or loads the module) against the catalog; reads nothing else. */
export async function validate(step: Step, ctx: ValidateContext) {
  await validating(ctx, async () => {
    await planBatchMigration(ctx.client, specOf(step));
  });
}

export interface BatchMigrateResult extends BatchProgress {
  dryRun: boolean;
  /** Counts and row-by-row comparison (SQL mapping only, not on a dry run). */
  verification: BatchVerification | null;
}

const HEARTBEAT_EVERY_MS = 2000;

export async function batchMigrateRun(input: StepInput<Step>): Promise<BatchMigrateResult> {
  const ctx = Context.current();
  const { step } = input;
  const spec = specOf(step);
  const report = progressReporter();
  let last: BatchProgress = { itemsDone: 0, batches: 0, deadLetters: 0, failures: [] };
  const timer = setInterval(() => ctx.heartbeat({ step: step.id, ...last }), HEARTBEAT_EVERY_MS);
  try {
    // The checkpoints in the database, not the heartbeat, say where a resumed attempt goes on.
    const progress = await runBatchMigration(connectionUrl(input.connection), spec, {
      beforeBatch: () => {
        if (ctx.cancellationSignal.aborted) throw ctx.cancellationSignal.reason;
      },
      onProgress: (p) => {
        last = p;
        ctx.heartbeat({ step: step.id, ...p });
        report({
          activity: 'batchMigrate',
          rowsDone: p.itemsDone,
          total: null,
          rowsPerSecond: null,
          throttled: p.deadLetters ? `${p.deadLetters} dead letters` : null,
        });
      },
    });
    const verification =
      spec.target && !spec.dryRun
        ? await withConnection(input.connection, 'cutover-batch', (c: ClientBase) =>
            verifyBatchMigration(c, spec),
          )
        : null;
    if (verification && verification.differing > 0)
      throw ApplicationFailure.nonRetryable(
        `batch migration ${spec.name}: ${verification.differing} source rows differ from the destination after the run (source ${verification.sourceRows}, destination ${verification.targetRows}, dead letters ${verification.deadLetters})`,
        'VerificationFailed',
      );
    const dead = spec.dryRun
      ? progress.failures.length
      : (verification?.deadLetters ?? progress.deadLetters);
    if (step.maxDeadLetters !== undefined && dead > step.maxDeadLetters)
      throw new UserError(
        `batch migration ${spec.name}: ${dead} items failed (dead letters in cutover.batch_dead_letters, more than maxDeadLetters ${step.maxDeadLetters})${progress.failures.length ? `, e.g. key ${progress.failures[0]!.key}: ${progress.failures[0]!.error}` : ''}`,
      );
    return { ...progress, dryRun: spec.dryRun ?? false, verification };
  } finally {
    clearInterval(timer);
  }
}

/**
 * Forgets the checkpoints, so a later run starts over (its upserts are harmless on rows already
 * there). The dead letters stay for the operator. The rows written stay too: the step that
 * created the destination removes them. Idempotent.
 */
export async function batchMigrateUndo(input: StepInput<Step>): Promise<void> {
  await withConnection(input.connection, 'cutover-batch', async (c) => {
    const exists = await c.query<{ ok: boolean }>(
      `SELECT to_regclass('${CHECKPOINTS}') IS NOT NULL AS ok`,
    );
    if (exists.rows[0]!.ok)
      await c.query(`DELETE FROM ${CHECKPOINTS} WHERE migration = $1`, [input.step.migration]);
  });
}

export { batchMigrateRun as run, batchMigrateUndo as undo };
