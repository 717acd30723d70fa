/**
 * The run's pre-flight (src/plan/preflight.ts) as an activity: before the first write of a run,
 * prove again over the whole table that every row maps, since rows may have changed since
 * `plan check`. Heartbeats its progress; a row that does not map fails the step without retry
 * (retrying cannot change the data), naming the keys and what to change.
 */
import { ApplicationFailure } from '@temporalio/common';
import { readBackfillControl } from '../src/backfill/control';
import { activityContext, heartbeat, withClient } from '../src/plan/activity-support';
import { preflightPlan } from '../src/plan/preflight';
import type { ResolvedPlan } from '../src/plan/resolved';

export interface PreflightResult {
  rowsChecked: number;
  batches: number;
}

export async function preflight(plan: ResolvedPlan): Promise<PreflightResult> {
  return withClient(plan.change.connection, undefined, 'cutover-preflight', async (client) => {
    const report = await preflightPlan(client, plan, {
      // The backfill's control row: a pause or throttle given now applies to this scan too.
      getControl: () => readBackfillControl(client, plan.change.name),
      onProgress: (p) => heartbeat({ phase: 'preflight', ...p }),
      signal: activityContext()?.cancellationSignal,
    });
    if (!report.ok)
      throw ApplicationFailure.nonRetryable(
        `pre-flight: not every row of ${plan.change.source.schema}.${plan.change.source.table} maps: ${report.problems.map((p) => `${p.path}: ${p.message}`).join('; ')}`,
        'LossyMapping',
        report.offenders,
      );
    return { rowsChecked: report.rowsChecked, batches: report.batches };
  });
}
