import { join } from 'node:path';
import {
  Worker,
  type InjectedSinks,
  type NativeConnection,
  type WorkerOptions,
} from '@temporalio/worker';
import * as activities from '../../activities/registry';
import { TASK_QUEUE, type CutoverSinks } from '../../workflows/definitions';
import { maskFailures } from './mask-failures';
import {
  planOfWorkflowId,
  recordChecks,
  recordRoutePercent,
  recordStage,
} from '../observability/metrics';
import { projectRoot } from '../tools';

// From the project root, not this file: the built CLI runs this code from dist/, and the worker
// bundles the workflow sources (webpack + swc) wherever it runs.
export const workflowsPath = join(projectRoot, 'workflows', 'index.ts');

/** The workflow's metrics sink: stage, route percent and check results into prom-client. */
export const metricsSinks: InjectedSinks<CutoverSinks> = {
  cutoverMetrics: {
    stage: { fn: (info, stage) => recordStage(planOfWorkflowId(info.workflowId), stage) },
    routePercent: {
      fn: (info, percent) => recordRoutePercent(planOfWorkflowId(info.workflowId), percent),
    },
    checks: { fn: (info, results) => recordChecks(planOfWorkflowId(info.workflowId), results) },
  },
};

/**
 * A worker running every cutover workflow and activity. Database connections come from this
 * process's environment (DATABASE_URL, CUTOVER_DB_<NAME>_URL), never from workflow inputs.
 */
export async function createWorker(
  connection: NativeConnection,
  namespace: string,
  overrides: Partial<WorkerOptions> = {},
): Promise<Worker> {
  return Worker.create({
    connection,
    namespace,
    taskQueue: TASK_QUEUE,
    workflowsPath,
    activities,
    // A bug or nondeterminism in workflow code fails the run visibly instead of leaving it
    // stuck in Running with a retrying workflow task.
    workflowFailureErrorTypes: { '*': ['Error'] },
    // Cancellation (abort) reaches an activity only with a heartbeat response; heartbeats are
    // throttled to this interval, so it bounds how long an aborted backfill keeps copying.
    maxHeartbeatThrottleInterval: '2 seconds',
    // Credentials an activity error echoes never reach the history.
    interceptors: { activity: [maskFailures] },
    sinks: metricsSinks,
    ...overrides,
  });
}
