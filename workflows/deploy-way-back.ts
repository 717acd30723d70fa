/**
 * The way back of a versioned-migration run, shared by the deploy and the rollback workflows:
 * the down scripts first; when they cannot run (missing, or failing), a human chooses between
 * restoring the tables from the run's backup and leaving the database as it is. Nothing here
 * guesses: the run waits, says why and what to type, and reports exactly what happened.
 */
import {
  CancellationScope,
  condition,
  patched,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type * as activities from '../activities/registry';
import { leaveSignal, restoreSignal, type DeployStatus, type RestoreRequest } from './definitions';

export const migrationActivities = proxyActivities<typeof activities>({
  startToCloseTimeout: '1 hour',
  retry: { initialInterval: '2s', maximumInterval: '1 minute', maximumAttempts: 5 },
});

/** Restores wait for locks with lock_timeout and retry; a human is waiting, so keep trying. */
const restoring = proxyActivities<typeof activities>({
  startToCloseTimeout: '2 hours',
  retry: { initialInterval: '2s', maximumInterval: '1 minute', maximumAttempts: 30 },
});

export type WayBack = 'rolled-back' | 'restored' | 'failed';

export interface WayBackInput {
  connection: string;
  dir: string;
  /** Version to go back to. */
  to: number;
  backupId?: string;
  status: DeployStatus;
}

import { innermostMessage as innermost } from '../src/temporal/failure-message';

export { innermost };

export function describeDeploy(status: DeployStatus): void {
  const lines = [`**deploy**: \`${status.state}\``];
  if (status.problem) lines.push('', status.problem);
  if (status.next?.length) lines.push('', ...status.next.map((n) => `- \`${n}\``));
  setCurrentDetails(lines.join('\n'));
}

/** Registers the restore/leave signals; call once, at the start of the workflow. */
export function wayBackHandlers(): { decision: () => RestoreDecision | undefined } {
  let decision: RestoreDecision | undefined;
  setHandler(restoreSignal, (req: RestoreRequest) => {
    decision ??= { kind: 'restore', sideSchema: req?.sideSchema };
  });
  setHandler(leaveSignal, () => {
    decision ??= { kind: 'leave' };
  });
  return { decision: () => decision };
}

type RestoreDecision = { kind: 'restore'; sideSchema?: string } | { kind: 'leave' };

export async function goBack(
  input: WayBackInput,
  decision: () => RestoreDecision | undefined,
): Promise<WayBack> {
  const { status } = input;
  status.state = 'rolling-back';
  describeDeploy(status);
  return CancellationScope.nonCancellable(async () => {
    try {
      await migrationActivities.migrationsRollback({
        connection: input.connection,
        dir: input.dir,
        to: input.to,
      });
      return 'rolled-back';
    } catch (err) {
      // Before this patch a failed down script failed the run; runs in flight keep that.
      if (!patched('deploy-restore-gate')) throw err;
      const why = innermost(err);
      const id = workflowInfo().workflowId;
      if (!input.backupId) {
        status.state = 'failed';
        status.problem = `the down scripts could not take the database back to version ${input.to} (${why}), and this run took no backup (--backup-table): the database is left as it is; repair it by hand`;
        describeDeploy(status);
        return 'failed';
      }
      status.state = 'waiting-for-restore';
      status.problem = `the down scripts could not take the database back to version ${input.to}: ${why}. Restore the tables from backup ${input.backupId} (taken before this run changed anything), or leave the database as it is.`;
      status.next = [
        `cutover deploy restore ${id} --side-schema cutover_before_restore`,
        `cutover deploy restore ${id}`,
        `cutover deploy leave ${id}`,
      ];
      describeDeploy(status);
      await condition(() => decision() !== undefined);
      const chosen = decision()!;
      status.next = undefined;
      if (chosen.kind === 'leave') {
        status.state = 'failed';
        status.problem = `${status.problem} The operator chose to leave the database as it is.`;
        describeDeploy(status);
        return 'failed';
      }
      status.state = 'restoring';
      describeDeploy(status);
      const restored = await restoring.migrationsRestore({
        connection: input.connection,
        backupId: input.backupId,
        sideSchema: chosen.sideSchema,
      });
      status.state = 'restored';
      status.problem = `restored ${restored.tables.join(', ')} from backup ${restored.backupId}${restored.keptIn ? `; the tables as they were before the restore are in schema ${restored.keptIn}` : ''}. The migration history still lists what the down scripts could not undo.`;
      describeDeploy(status);
      return 'restored';
    }
  });
}
