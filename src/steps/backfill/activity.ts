/**
 * The backfill as Temporal activities. backfillRun runs the whole batch loop itself (the
 * workflow history sees one activity, whatever the row count), heartbeats its checkpoint and
 * progress, resumes from the last heartbeat after a retry, and reads its throttle from
 * cutover.backfill_control, which the workflow changes through backfillControl.
 */
import { Context } from '@temporalio/activity';
import type { ClientBase } from 'pg';
import { withConnection } from '../../temporal/activity';
import type { ResolvedChange } from '../../plan/types';
import { ApplicationFailure } from '@temporalio/common';
import {
  BackfillDataError,
  DEFAULT_GHOST_GUARD,
  isDataError,
  runBackfill,
  type BackfillProgress,
  type BackfillThrottle,
  type GhostGuard,
  type KeyRange,
} from '../../backfill/core';
import {
  clearBackfillControl,
  ensureControlTable,
  readBackfillControl,
  setBackfillControl,
} from '../../backfill/control';
import { splitKeyRanges, type PlannedRange } from '../../backfill/ranges';
import { resolveLoadBudget, type PlanLoadBudget } from '../../backfill/load-budget';
import { drainSyncDebt } from '../sync/debt';
import { setCopyMode } from '../sync/triggers';
import { recordBackfillProgress } from '../../observability/metrics';
import { progressReporter } from '../../temporal/progress';

export type { BackfillProgress, BackfillThrottle, GhostGuard, KeyRange, PlannedRange };

export interface BackfillInput {
  change: ResolvedChange;
  ghostGuard?: GhostGuard;
  /** One of splitKeyRanges' ranges when several activities share the table; whole table if absent. */
  range?: KeyRange | null;
  /** Initial throttle (from the plan); the control row overrides it while running. */
  throttle?: Partial<BackfillThrottle>;
  /** The plan's load budget; none when absent. */
  loadBudget?: PlanLoadBudget;
  estimatedTotal?: number;
}

/** Heartbeat at least this often whatever a batch or a pause takes: cheap, throttled by the SDK. */
const HEARTBEAT_EVERY_MS = 2000;

const withChangeConnection = <T>(
  change: ResolvedChange,
  app: string,
  work: (c: ClientBase) => Promise<T>,
) => withConnection(change.connection, app, work);

function sameRange(a: KeyRange | null | undefined, b: KeyRange | null | undefined): boolean {
  return (a?.after ?? null) === (b?.after ?? null) && (a?.upTo ?? null) === (b?.upTo ?? null);
}

/** The checkpoint in heartbeat details, if it belongs to this plan and range. */
export function checkpointFromHeartbeat(
  details: unknown,
  input: Pick<BackfillInput, 'change' | 'range'>,
): BackfillProgress | null {
  if (typeof details !== 'object' || details === null) return null;
  const d = details as Partial<BackfillProgress>;
  if (d.plan !== input.change.name || !sameRange(d.range, input.range)) return null;
  if (typeof d.rowsDone !== 'number' || !(d.lastKey === null || Array.isArray(d.lastKey)))
    return null;
  return d as BackfillProgress;
}

/**
 * Copies the source into the target. Heartbeat details: BackfillProgress (checkpoint fields
 * mode / pages (page order) or lastKey (key order) / rowsDone / batches / sweepPending, plus
 * rate, ETA and throttle state). Throws the
 * activity's CancelledFailure when cancelled, after the current batch has committed.
 */
export async function backfillRun(input: BackfillInput): Promise<BackfillProgress> {
  const ctx = Context.current();
  const resume = checkpointFromHeartbeat(ctx.info.heartbeatDetails, input);
  // Rows up to the checkpoint were counted by the attempt that copied them.
  const counted = { rowsDone: resume?.rowsDone ?? 0 };
  const report = progressReporter();
  return withChangeConnection(input.change, 'cutover-backfill', async (client) => {
    await ensureControlTable(client);
    // The last progress is re-sent on a timer, so a slow batch (a lock wait) or a long hold
    // never looks like a dead worker, and the heartbeat timeout can stay short.
    let last: BackfillProgress | null = resume;
    const timer = setInterval(() => {
      if (last) ctx.heartbeat(last);
    }, HEARTBEAT_EVERY_MS);
    try {
      // The lock-free default relies on the forward trigger recording every delete while the
      // copy runs (copy mode): switched on here, since a retried or resumed backfill may find
      // it settled, or installed by an older version. Without a sync, lock the rows instead.
      const synced = await setCopyMode(client, input.change, true, {
        onWait: () => {
          if (last) ctx.heartbeat(last);
        },
      });
      const ghostGuard = input.ghostGuard ?? (synced ? DEFAULT_GHOST_GUARD : 'lock');
      const result = await runBackfill(client, input.change, {
        ghostGuard,
        range: input.range ?? null,
        resumeFrom: resume,
        throttle: input.throttle,
        estimatedTotal: input.estimatedTotal,
        loadBudget: resolveLoadBudget(input.loadBudget),
        getControl: () => readBackfillControl(client, input.change.name),
        onProgress: (p) => {
          last = p;
          recordBackfillProgress(p, counted);
          ctx.heartbeat(p);
          const held = p.paused ? 'paused' : p.throttled;
          report(
            {
              activity: 'backfill',
              rowsDone: p.rowsDone,
              total: p.estimatedTotal > 0 ? Math.max(p.estimatedTotal, p.rowsDone) : null,
              rowsPerSecond: p.state === 'running' ? Math.round(p.rowsPerSecond) : 0,
              throttled: p.state === 'done' ? null : held,
            },
            p.state === 'done',
          );
        },
        signal: ctx.cancellationSignal,
      }).catch((err: unknown) => {
        // The data will be the same on every attempt: fail the step now, naming the row.
        if (err instanceof BackfillDataError)
          throw ApplicationFailure.nonRetryable(err.message, 'DataError', {
            key: err.key,
            sqlState: err.sqlState,
          });
        if (isDataError(err))
          throw ApplicationFailure.nonRetryable((err as Error).message, 'DataError');
        throw err;
      });
      if (result.cancelled) await ctx.cancelled; // rejects with the CancelledFailure
      last = result.progress;
      // Keys the triggers could not settle (a DELETE that missed a row a batch was copying, a
      // REPEATABLE READ writer's snapshot) are in the sync debt: settled here so the tables are
      // equal when the copy ends. Not by one range of a split backfill: another range's batch
      // may still be in flight, and a copy it commits after the drain would survive. The
      // workflow drains once all ranges are done. The timer keeps beating meanwhile.
      if (!input.range) {
        // Every batch has committed: deletes from here on cannot meet a stale copy.
        await setCopyMode(client, input.change, false);
        await drainSyncDebt(client, input.change, {
          onProgress: () => ctx.heartbeat(result.progress),
        });
      }
      return result.progress;
    } finally {
      clearInterval(timer);
    }
  });
}

export interface BackfillControlInput extends Partial<BackfillThrottle> {
  connection: string;
  plan: string;
}

/**
 * Pause / resume / re-throttle the running backfill of a plan (all its ranges): the workflow
 * calls this from its pause, resume and throttle signal handlers. Returns the stored settings.
 */
export async function backfillControl(
  input: BackfillControlInput,
): Promise<Partial<BackfillThrottle>> {
  const { connection, plan, ...settings } = input;
  return withConnection(connection, 'cutover-backfill-control', (client) =>
    setBackfillControl(client, plan, settings),
  );
}

/** Key ranges for parallel backfill activities. */
export async function backfillSplitRanges(input: {
  change: ResolvedChange;
  parts: number;
}): Promise<PlannedRange[]> {
  return withChangeConnection(input.change, 'cutover-backfill', (c) =>
    splitKeyRanges(c, input.change, input.parts),
  );
}

/**
 * Undo: forgets the plan's control row. The copied rows go with the shadow table (its undo drops
 * it); deleting them here would only be slow work thrown away. Idempotent.
 */
export async function backfillUndo(input: { change: ResolvedChange }): Promise<void> {
  await withChangeConnection(input.change, 'cutover-backfill', (c) =>
    clearBackfillControl(c, input.change.name),
  );
}
