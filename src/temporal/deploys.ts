/**
 * The client side of versioned-migration runs on the workers: a rollback to a version, and the
 * operator's answer when down scripts cannot run (restore the run's backup, or leave it).
 */
import {
  WorkflowExecutionAlreadyStartedError,
  WorkflowNotFoundError,
  type Client,
  type WorkflowHandle,
} from '@temporalio/client';
import { UserError } from '../errors';
import {
  deployStatusQuery,
  leaveSignal,
  restoreSignal,
  TASK_QUEUE,
  type DeployStatus,
} from '../../workflows/definitions';
import { deployRollback, type DeployRollbackInput } from '../../workflows/deploy-rollback';

/** One rollback per connection at a time, like deploys. */
export async function startDeployRollback(
  client: Client,
  input: DeployRollbackInput,
): Promise<WorkflowHandle<typeof deployRollback>> {
  const workflowId = `cutover-rollback-${input.connection}`;
  try {
    return await client.workflow.start(deployRollback, {
      taskQueue: TASK_QUEUE,
      workflowId,
      args: [input],
      staticSummary: `Roll connection ${input.connection} back to version ${input.to}`,
    });
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError) {
      throw new UserError(
        `a rollback of connection ${input.connection} is already running (workflow id ${workflowId})`,
      );
    }
    throw err;
  }
}

async function openDeployRun(client: Client, workflowId: string): Promise<WorkflowHandle> {
  const handle = client.workflow.getHandle(workflowId);
  try {
    const desc = await handle.describe();
    if (desc.status.name !== 'RUNNING')
      throw new UserError(
        `run ${workflowId} is ${desc.status.name.toLowerCase()}: there is nothing to restore or leave`,
      );
  } catch (err) {
    if (err instanceof WorkflowNotFoundError)
      throw new UserError(
        `no deploy or rollback run "${workflowId}" (ids look like cutover-deploy-default or cutover-rollback-default)`,
      );
    throw err;
  }
  return handle;
}

export async function deployStatus(client: Client, workflowId: string): Promise<DeployStatus> {
  const handle = client.workflow.getHandle(workflowId);
  try {
    return await handle.query(deployStatusQuery);
  } catch (err) {
    if (err instanceof WorkflowNotFoundError)
      throw new UserError(`no deploy or rollback run "${workflowId}"`);
    throw err;
  }
}

async function assertWaitingForRestore(handle: WorkflowHandle): Promise<DeployStatus> {
  const status = await handle.query(deployStatusQuery);
  if (status.state !== 'waiting-for-restore')
    throw new UserError(
      `run ${handle.workflowId} is not waiting for a restore decision (state: ${status.state})`,
    );
  return status;
}

export async function answerRestore(
  client: Client,
  workflowId: string,
  answer: { restore: true; sideSchema?: string } | { restore: false },
): Promise<DeployStatus> {
  const handle = await openDeployRun(client, workflowId);
  const status = await assertWaitingForRestore(handle);
  if (answer.restore) await handle.signal(restoreSignal, { sideSchema: answer.sideSchema });
  else await handle.signal(leaveSignal);
  return status;
}
