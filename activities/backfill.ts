/**
 * The backfill as Temporal activities. backfillRun runs the whole keyset loop itself (the
 * workflow history sees one activity, whatever the row count), heartbeats its checkpoint and
 * progress, resumes from the last heartbeat after a retry, and reads its throttle from
 * cutover.backfill_control, which the workflow changes through backfillControl.
 */
import { Context } from '@temporalio/activity';
import type pg from 'pg';
import { connectionUrl, openClient } from '../src/db/connect';
import { quoteIdent, quoteQualified } from '../src/db/ident';
import { UserError } from '../src/errors';
import type { ResolvedChange } from '../src/plan/types';
import {
  runBackfill,
  type BackfillProgress,
  type BackfillThrottle,
  type GhostGuard,
  type KeyRange,
} from '../src/backfill/core';
import {
  clearBackfillControl,
  ensureControlTable,
  readBackfillControl,
  setBackfillControl,
} from '../src/backfill/control';
import { splitKeyRanges, type PlannedRange } from '../src/backfill/ranges';
import { resolveLoadBudget, type PlanLoadBudget } from '../src/backfill/load-budget';

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

async function withConnection<T>(
  change: ResolvedChange,
  app: string,
  work: (c: pg.Client) => Promise<T>,
): Promise<T> {
  const client = await openClient(connectionUrl(change.connection), app);
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

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

/** Read-only: the key columns exist and the batch insert compiles. */
export async function backfillValidate(input: BackfillInput): Promise<void> {
  const { change } = input;
  await withConnection(change, 'cutover-backfill', async (c) => {
    const cols = change.up.map((m) => quoteIdent(m.column)).join(', ');
    const exprs = change.up.map((m) => `(${m.expression})`).join(', ');
    await c.query('BEGIN');
    try {
      await c.query(
        `EXPLAIN INSERT INTO ${quoteQualified(change.target.schema, change.target.table)} (${cols})
           SELECT ${exprs} FROM ${quoteQualified(change.source.schema, change.source.table)} AS s
           ORDER BY ${change.sourceKey.map((k) => `s.${quoteIdent(k)}`).join(', ')}
           ON CONFLICT (${change.targetKey.map(quoteIdent).join(', ')}) DO NOTHING`,
      );
    } catch (err) {
      throw new UserError(
        `backfill of plan "${change.name}" cannot run: ${(err as Error).message}`,
      );
    } finally {
      await c.query('ROLLBACK');
    }
  });
}

/**
 * Copies the source into the target. Heartbeat details: BackfillProgress (checkpoint fields
 * lastKey / rowsDone / batches / sweepPending, plus rate, ETA and throttle state). Throws the
 * activity's CancelledFailure when cancelled, after the current batch has committed.
 */
export async function backfillRun(input: BackfillInput): Promise<BackfillProgress> {
  const ctx = Context.current();
  const resume = checkpointFromHeartbeat(ctx.info.heartbeatDetails, input);
  return withConnection(input.change, 'cutover-backfill', async (client) => {
    await ensureControlTable(client);
    // The last progress is re-sent on a timer, so a slow batch (a lock wait) or a long hold
    // never looks like a dead worker, and the heartbeat timeout can stay short.
    let last: BackfillProgress | null = resume;
    const timer = setInterval(() => {
      if (last) ctx.heartbeat(last);
    }, HEARTBEAT_EVERY_MS);
    const result = await runBackfill(client, input.change, {
      ghostGuard: input.ghostGuard,
      range: input.range ?? null,
      resumeFrom: resume,
      throttle: input.throttle,
      estimatedTotal: input.estimatedTotal,
      loadBudget: resolveLoadBudget(input.loadBudget),
      getControl: () => readBackfillControl(client, input.change.name),
      onProgress: (p) => {
        last = p;
        ctx.heartbeat(p);
      },
      signal: ctx.cancellationSignal,
    }).finally(() => clearInterval(timer));
    if (result.cancelled) await ctx.cancelled; // rejects with the CancelledFailure
    return result.progress;
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
  const client = await openClient(connectionUrl(connection), 'cutover-backfill-control');
  try {
    return await setBackfillControl(client, plan, settings);
  } finally {
    await client.end();
  }
}

/** Key ranges for parallel backfill activities. */
export async function backfillSplitRanges(input: {
  change: ResolvedChange;
  parts: number;
}): Promise<PlannedRange[]> {
  return withConnection(input.change, 'cutover-backfill', (c) =>
    splitKeyRanges(c, input.change, input.parts),
  );
}

/**
 * Undo: forgets the plan's control row. The copied rows go with the shadow table (its undo drops
 * it); deleting them here would only be slow work thrown away. Idempotent.
 */
export async function backfillUndo(input: { change: ResolvedChange }): Promise<void> {
  await withConnection(input.change, 'cutover-backfill', (c) =>
    clearBackfillControl(c, input.change.name),
  );
}
