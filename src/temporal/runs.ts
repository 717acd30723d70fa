/**
 * The client side of a blue-green run: start it from a plan file, send it messages, read its
 * status. Shared by the CLI and the end-to-end tests.
 */
import { basename } from 'node:path';
import {
  WorkflowExecutionAlreadyStartedError,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
  type Client,
  type WorkflowHandle,
} from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { connectionUrl, openClient } from '../db/connect';
import { UserError } from '../errors';
import { maskSecrets } from '../safe-text';
import {
  checkPlan,
  formatProblem,
  loadPlanFile,
  planIdentity,
  runnablePlan,
  type RunnablePlan,
} from '../plan';
import {
  abortSignal,
  approveUpdate,
  pauseSignal,
  planSearchAttribute,
  resumeSignal,
  stageSearchAttribute,
  statusQuery,
  tableSearchAttribute,
  TASK_QUEUE,
  throttleProblems,
  throttleUpdate,
  workflowIdFor,
  type RunStatus,
  type ThrottleRequest,
} from '../../workflows/definitions';
import type { RunSettings } from '../plan/run-settings';
import { blueGreen, type BlueGreenInput } from '../../workflows/blue-green';
import { deployMigrations, type DeployInput } from '../../workflows/deploy-migrations';

export function uiUrl(namespace: string, workflowId?: string): string {
  const base = (process.env.TEMPORAL_UI_URL || 'http://localhost:8233').replace(/\/$/, '');
  return workflowId
    ? `${base}/namespaces/${encodeURIComponent(namespace)}/workflows/${encodeURIComponent(workflowId)}`
    : base;
}

/** Refuses early, before the plan check, when the plan already has an open run. */
export async function assertNoOpenRun(client: Client, planName: string): Promise<void> {
  const workflowId = workflowIdFor(planName);
  try {
    const desc = await client.workflow.getHandle(workflowId).describe();
    if (desc.status.name === 'RUNNING') {
      throw new UserError(
        `plan ${planName} already has an open run (workflow id ${workflowId}); see \`cutover status ${planName}\`, or abort it first`,
      );
    }
  } catch (err) {
    if (!(err instanceof WorkflowNotFoundError)) throw err;
  }
}

/** Loads and checks a plan against its database; refuses it with every problem listed. */
export async function preparePlan(file: string): Promise<RunnablePlan> {
  const plan = await loadPlanFile(file);
  const client = await openClient(connectionUrl(plan.connection), 'cutover plan check');
  try {
    // The run proves every row maps before its first write; scanning the table here too would
    // double the cost for big tables. The file's name only: the resolved plan is the workflow
    // input, and a path on the operator's machine means nothing to workers.
    const report = await checkPlan(plan, client, { fileName: basename(file), preflight: false });
    const resolved = runnablePlan(report);
    if (!report.ok || !resolved) {
      throw new UserError(
        `plan ${file} cannot start:\n  ${report.problems.map((p) => formatProblem(report.fileName, p)).join('\n  ')}`,
      );
    }
    return resolved;
  } finally {
    await client.end();
  }
}

export interface StartOptions {
  settings?: Partial<RunSettings>;
  namespace: string;
}

export async function startRun(
  client: Client,
  plan: RunnablePlan,
  opts: StartOptions,
): Promise<WorkflowHandle<typeof blueGreen>> {
  const { name } = planIdentity(plan);
  const workflowId = workflowIdFor(name);
  const input: BlueGreenInput = { plan, settings: opts.settings };
  // What the Web UI shows about the run before it has a status: the table(s) it changes.
  const shown =
    plan.kind === 'expand'
      ? {
          table: plan.tables.join(', '),
          memo: { kind: 'expand/contract', tables: plan.tables.join(', ') },
          summary: `Expand/contract change ${name}: ${plan.tables.join(', ') || 'no table'}`,
        }
      : {
          table: `${plan.change.source.schema}.${plan.change.source.table}`,
          memo: {
            source: `${plan.change.source.schema}.${plan.change.source.table}`,
            target: `${plan.change.target.schema}.${plan.change.target.table}`,
            direction: plan.readsOnly ? 'reads-only' : 'two-way',
          },
          summary: `Blue-green change ${name}: ${plan.change.source.schema}.${plan.change.source.table} → ${plan.change.target.schema}.${plan.change.target.table}`,
        };
  const base = {
    taskQueue: TASK_QUEUE,
    workflowId,
    args: [input] as [BlueGreenInput],
    memo: { plan: name, file: basename(plan.fileName), ...shown.memo },
    staticSummary: shown.summary,
  };
  try {
    try {
      return await client.workflow.start(blueGreen, {
        ...base,
        typedSearchAttributes: [
          { key: planSearchAttribute, value: name },
          { key: tableSearchAttribute, value: shown.table },
          { key: stageSearchAttribute, value: 'starting' },
        ],
      });
    } catch (err) {
      // A cluster without cutover's search attributes still runs the workflow, just less visibly.
      if (!/search attribute/i.test((err as Error).message)) throw err;
      process.stderr.write(
        'warning: search attributes CutoverPlan/CutoverTable/CutoverStage are not registered on this namespace; ' +
          'starting without them (see docs/temporal.md)\n',
      );
      return await client.workflow.start(blueGreen, base);
    }
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError) {
      throw new UserError(
        `plan ${name} already has an open run (workflow id ${workflowId}); see \`cutover status ${name}\`, or abort it first`,
      );
    }
    throw err;
  }
}

/** One deploy per connection at a time: the id is derived from the connection name. */
export async function startDeploy(
  client: Client,
  input: DeployInput,
): Promise<WorkflowHandle<typeof deployMigrations>> {
  const workflowId = `cutover-deploy-${input.connection}`;
  try {
    return await client.workflow.start(deployMigrations, {
      taskQueue: TASK_QUEUE,
      workflowId,
      args: [input],
      staticSummary: `Deploy versioned migrations from ${input.dir} to connection ${input.connection}`,
    });
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError) {
      throw new UserError(
        `a deploy to connection ${input.connection} is already running (workflow id ${workflowId})`,
      );
    }
    throw err;
  }
}

/** Accepts a plan name or a workflow id. */
export function workflowIdOf(idOrPlan: string): string {
  return idOrPlan.startsWith('cutover-') ? idOrPlan : workflowIdFor(idOrPlan);
}

async function describedHandle(client: Client, idOrPlan: string) {
  const handle = client.workflow.getHandle<typeof blueGreen>(workflowIdOf(idOrPlan));
  try {
    return { handle, desc: await handle.describe() };
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) {
      throw new UserError(
        `no cutover run "${idOrPlan}" (workflow id ${handle.workflowId}); \`cutover list\` shows the runs`,
      );
    }
    throw err;
  }
}

/** How a closed run ended, e.g. `rolled-back: aborted: load test over` or `failed: …`. */
async function closedOutcome(
  handle: WorkflowHandle<typeof blueGreen>,
  statusName: string,
): Promise<string> {
  if (statusName === 'COMPLETED') {
    const r = (await handle.result()) as { outcome: string; reason?: string };
    return r.reason ? `${r.outcome}: ${r.reason}` : r.outcome;
  }
  if (statusName === 'FAILED') {
    return handle.result().then(
      () => 'failed',
      (e: Error) => `failed: ${(e.cause as Error | undefined)?.message ?? e.message}`,
    );
  }
  return statusName.toLowerCase().replace(/_/g, ' ');
}

/**
 * A handle for sending a message to a run, refused with the run's id and outcome when it has
 * already ended: Temporal's own "workflow execution already completed" names neither.
 */
async function openHandle(
  client: Client,
  idOrPlan: string,
  verb: string,
): Promise<WorkflowHandle<typeof blueGreen>> {
  const { handle, desc } = await describedHandle(client, idOrPlan);
  if (desc.status.name !== 'RUNNING') {
    let outcome = await closedOutcome(handle, desc.status.name);
    if (outcome.length > 200) outcome = `${outcome.slice(0, 200)}…`;
    const ended = desc.status.name === 'COMPLETED' ? 'completed' : 'ended';
    throw new UserError(
      `run ${handle.workflowId} already ${ended} (${outcome}); nothing to ${verb}`,
    );
  }
  return handle;
}

/** The run ended between our check and the signal: report it the same way. */
function closedMeanwhile(client: Client, idOrPlan: string, verb: string) {
  return async (err: unknown): Promise<never> => {
    await openHandle(client, idOrPlan, verb);
    throw err;
  };
}

function updateError(err: unknown): never {
  if (err instanceof WorkflowUpdateFailedError) {
    const cause = err.cause as Error | undefined;
    throw new UserError(cause?.message ?? err.message);
  }
  throw err;
}

export async function approve(
  client: Client,
  idOrPlan: string,
  gate?: string,
  by?: string,
): Promise<string> {
  const handle = await openHandle(client, idOrPlan, 'approve');
  return handle.executeUpdate(approveUpdate, { args: [{ gate, by }] }).catch(updateError);
}

export async function abortRun(
  client: Client,
  idOrPlan: string,
  reason: string,
  keepShadow = false,
): Promise<void> {
  const handle = await openHandle(client, idOrPlan, 'abort');
  // The reason is stored in the history and shown in every status: never a credential.
  await handle
    .signal(abortSignal, { reason: maskSecrets(reason), keepShadow })
    .catch(closedMeanwhile(client, idOrPlan, 'abort'));
}

export async function pauseRun(client: Client, idOrPlan: string, paused: boolean): Promise<void> {
  const verb = paused ? 'pause' : 'resume';
  const handle = await openHandle(client, idOrPlan, verb);
  await handle
    .signal(paused ? pauseSignal : resumeSignal)
    .catch(closedMeanwhile(client, idOrPlan, verb));
}

export async function throttleRun(
  client: Client,
  idOrPlan: string,
  t: ThrottleRequest,
): Promise<ThrottleRequest> {
  const problems = throttleProblems(t);
  if (problems.length) throw new UserError(problems.join('; '), 2);
  const handle = await openHandle(client, idOrPlan, 'throttle');
  return handle.executeUpdate(throttleUpdate, { args: [t] }).catch(updateError);
}

export interface LiveProgress {
  activity: string;
  attempt: number;
  /** Why the previous attempt failed, while a retry is in progress. */
  lastError?: string;
  details?: Record<string, unknown>;
}

export interface RunReport {
  workflowId: string;
  runStatus: string;
  status?: RunStatus;
  activities: LiveProgress[];
  result?: unknown;
  failure?: string;
}

/** The workflow's own status (query) plus live heartbeat details of running activities. */
export async function runReport(client: Client, idOrPlan: string): Promise<RunReport> {
  const { handle, desc } = await describedHandle(client, idOrPlan);
  const report: RunReport = {
    workflowId: handle.workflowId,
    runStatus: desc.status.name,
    activities: [],
  };
  try {
    report.status = await handle.query(statusQuery);
  } catch (err) {
    report.failure = `status query failed (is a worker running?): ${(err as Error).message}`;
  }
  for (const a of desc.raw.pendingActivities ?? []) {
    const payload = a.heartbeatDetails?.payloads?.[0];
    report.activities.push({
      activity: a.activityType?.name ?? '?',
      attempt: a.attempt ?? 1,
      ...(a.lastFailure?.message ? { lastError: a.lastFailure.message } : {}),
      details: payload
        ? (defaultPayloadConverter.fromPayload(payload) as Record<string, unknown>)
        : undefined,
    });
  }
  if (desc.status.name === 'COMPLETED') report.result = await handle.result();
  if (desc.status.name === 'FAILED') {
    report.failure = await handle.result().then(
      () => undefined,
      (e: Error) => (e.cause as Error | undefined)?.message ?? e.message,
    );
  }
  return report;
}

export async function listRuns(
  client: Client,
): Promise<Array<{ workflowId: string; status: string; started: Date; plan?: string }>> {
  const out = [];
  for await (const w of client.workflow.list({ query: `WorkflowType = 'blueGreen'` })) {
    out.push({
      workflowId: w.workflowId,
      status: w.status.name,
      started: w.startTime,
      plan: (w.memo as Record<string, unknown> | undefined)?.plan as string | undefined,
    });
    if (out.length >= 100) break;
  }
  return out;
}
