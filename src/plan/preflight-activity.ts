/**
 * The run's pre-flight (src/plan/preflight.ts) as an activity: before the first write of a run,
 * prove again over the whole table that every row maps, since rows may have changed since
 * `plan check`. Heartbeats its progress; a row that does not map fails the step without retry
 * (retrying cannot change the data), naming the keys and what to change.
 */
import { ApplicationFailure } from '@temporalio/common';
import { readBackfillControl } from '../backfill/control';
import {
  activityContext,
  heartbeat,
  whileHeartbeating,
  withConnection,
} from '../temporal/activity';
import { preflightPlan } from './preflight';
import type { ResolvedPlan } from './resolved';

export interface PreflightResult {
  rowsChecked: number;
  batches: number;
}

export async function preflight(plan: ResolvedPlan): Promise<PreflightResult> {
  return withConnection(plan.change.connection, 'cutover-preflight', async (client) => {
    // One object, updated per batch and heartbeated on a timer too: the grouped duplicate check
    // is one statement that may outlast the heartbeat timeout.
    const progress = { phase: 'preflight', rowsChecked: 0, batches: 0 };
    const report = await whileHeartbeating(progress, () =>
      preflightPlan(client, plan, {
        // The backfill's control row: a pause or throttle given now applies to this scan too.
        getControl: () => readBackfillControl(client, plan.change.name),
        onProgress: (p) => {
          Object.assign(progress, p);
          heartbeat(progress);
        },
        signal: activityContext()?.cancellationSignal,
      }),
    );
    if (!report.ok)
      throw ApplicationFailure.nonRetryable(
        `pre-flight: not every row of ${plan.change.source.schema}.${plan.change.source.table} maps: ${report.problems.map((p) => `${p.path}: ${p.message}`).join('; ')}`,
        'LossyMapping',
        report.offenders,
      );
    return { rowsChecked: report.rowsChecked, batches: report.batches };
  });
}
