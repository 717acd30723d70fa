/**
 * The column backfill under the same throttle as the table backfill: the plan's load budget
 * (src/backfill/load-budget.ts) spaces the batches by what the application feels, and the plan's
 * control row (cutover.backfill_control, which `cutover pause / resume / throttle` set) pauses it
 * or changes its batch size and sleep between batches. Progress carries the checkpoint (last key)
 * and "throttled: <reason>"; a run resumed from it updates no row twice, since a batch only
 * touches rows whose value still differs from the expression.
 */
import type { ClientBase } from 'pg';
import { readBackfillControl } from '../../backfill/control';
import type { BackfillThrottle } from '../../backfill/core';
import { LoadGovernor, type LoadBudget } from '../../backfill/load-budget';
import { runBackfillColumn, type ColumnBackfillCheckpoint } from '../../expand/backfill-column';
import { qt, tableRef } from '../../expand/common';
import type { ResolvedStepOf } from '../schemas';

type Step = ResolvedStepOf<'backfillColumn'>;

export interface ColumnBackfillProgress extends ColumnBackfillCheckpoint {
  /** The step id: a heartbeat of another step is not this one's checkpoint. */
  step: string;
  state: 'running' | 'paused' | 'done' | 'cancelled';
  estimatedTotal: number;
  batchSize: number;
  rowsPerSecond: number;
  /** The load budget's reason for holding back, or "paused"; null when running freely. */
  throttled: string | null;
}

export interface ColumnBackfillOptions {
  /** The plan's name: its control row is the one `cutover pause / throttle` write. */
  plan: string;
  resumeFrom?: ColumnBackfillCheckpoint | null;
  loadBudget?: LoadBudget | null;
  onProgress?: (p: ColumnBackfillProgress) => void;
  signal?: AbortSignal;
  controlPollMs?: number;
}

class Cancelled extends Error {}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The checkpoint in heartbeat details, if it is this step's. */
export function columnCheckpoint(details: unknown, step: Step): ColumnBackfillProgress | null {
  if (typeof details !== 'object' || details === null) return null;
  const d = details as Partial<ColumnBackfillProgress>;
  if (d.step !== step.id || typeof d.rowsScanned !== 'number') return null;
  if (d.lastKey !== undefined && !Array.isArray(d.lastKey)) return null;
  return d as ColumnBackfillProgress;
}

export async function runColumnBackfill(
  client: ClientBase,
  step: Step,
  opts: ColumnBackfillOptions,
): Promise<ColumnBackfillProgress> {
  const t = tableRef(step.table);
  const est = await client.query<{ n: number }>(
    `SELECT greatest(reltuples, 0)::float8 AS n FROM pg_class WHERE oid = to_regclass($1)`,
    [qt(t)],
  );
  const estimatedTotal = Math.round(est.rows[0]?.n ?? 0);
  const from = opts.resumeFrom;
  const start: ColumnBackfillCheckpoint = {
    ...(from?.lastKey !== undefined ? { lastKey: from.lastKey } : {}),
    rowsUpdated: from?.rowsUpdated ?? 0,
    rowsScanned: from?.rowsScanned ?? 0,
    batches: from?.batches ?? 0,
  };
  let cp = start;
  let control: Partial<BackfillThrottle> = {};
  let polledAt = 0;
  const cancelled = () => Boolean(opts.signal?.aborted);
  const governor: LoadGovernor | null = opts.loadBudget?.enabled
    ? new LoadGovernor(client, opts.loadBudget, {
        isCancelled: cancelled,
        onHold: (state): void => report(state.critical ? 'paused' : 'running'),
      })
    : null;
  const governed = () => Boolean(governor && control.loadBudget !== false);
  const batchSize = () => {
    const ceiling = control.batchSize ?? step.batchSize;
    return governed()
      ? Math.max(Math.min(100, ceiling), Math.round(ceiling * governor!.batchScale))
      : ceiling;
  };
  const startedAt = Date.now();
  const progress = (state: ColumnBackfillProgress['state']): ColumnBackfillProgress => {
    const secs = (Date.now() - startedAt) / 1000;
    return {
      ...cp,
      step: step.id,
      state,
      estimatedTotal,
      batchSize: batchSize(),
      rowsPerSecond: secs > 0 ? Math.round((cp.rowsScanned - start.rowsScanned) / secs) : 0,
      throttled:
        state === 'paused' && control.paused
          ? 'paused'
          : governed()
            ? governor!.state.reason
            : null,
    };
  };
  const report = (state: ColumnBackfillProgress['state']): void =>
    opts.onProgress?.(progress(state));
  const poll = async (force = false) => {
    if (!force && Date.now() - polledAt < (opts.controlPollMs ?? 500)) return;
    polledAt = Date.now();
    control = (await readBackfillControl(client, opts.plan)) ?? {};
  };

  await poll(true);
  if (governed()) await governor!.start();
  try {
    cp = await runBackfillColumn(
      client,
      {
        table: step.table,
        column: step.column,
        expression: step.expression,
        batchSize: step.batchSize,
      },
      start,
      {
        batchSize,
        beforeBatch: async () => {
          await poll();
          while (control.paused && !cancelled()) {
            report('paused');
            await sleep(200);
            await poll(true);
          }
          if (cancelled()) throw new Cancelled();
        },
        onBatch: async (next, ms) => {
          cp = next;
          report('running');
          // One write transaction per batch, and the batch's own read.
          if (governed()) await governor!.afterWork(ms, 1, 1);
          const pause = control.sleepMs ?? step.pauseMs;
          if (pause > 0) await sleep(pause);
        },
      },
    );
  } catch (err) {
    if (!(err instanceof Cancelled)) throw err;
    const p = progress('cancelled');
    opts.onProgress?.(p);
    return p;
  }
  const done = progress('done');
  opts.onProgress?.(done);
  return done;
}
