/**
 * Takes the database back to a version, as the seed's rollback procedure: backup point → version
 * check → down scripts (each removes its history row) → health check. When a down script is
 * missing or fails, the run waits for an operator to restore the backup point or leave it as is.
 */
import {
  ApplicationFailure,
  allHandlersFinished,
  condition,
  setHandler,
} from '@temporalio/workflow';
import type { CheckConfig } from '../src/monitor/checks';
import { deployStatusQuery, type DeployStatus } from './definitions';
import {
  describeDeploy,
  goBack,
  migrationActivities as act,
  wayBackHandlers,
} from './deploy-way-back';

export interface DeployRollbackInput {
  connection: string;
  /** Migrations directory on the workers (the down scripts are read there). */
  dir: string;
  /** Version to go back to (0: before the first migration). */
  to: number;
  /** Tables to back up with pg_dump first: the way back if a down script fails. */
  backupTables?: string[];
  /** Checks after the down scripts (HTTP health URL, SQL threshold, Prometheus). */
  postChecks?: CheckConfig[];
}

export interface DeployRollbackResult {
  outcome: 'rolled-back' | 'up-to-date' | 'restored';
  from: number;
  to: number;
  backupId?: string;
  /** Post-checks that failed after the down scripts ran (the rollback itself is kept). */
  failedChecks: string[];
}

export async function deployRollback(input: DeployRollbackInput): Promise<DeployRollbackResult> {
  const status: DeployStatus = { state: 'running', applied: [], to: input.to };
  setHandler(deployStatusQuery, () => status);
  const { decision } = wayBackHandlers();
  const target = { connection: input.connection, dir: input.dir };

  const from = await act.migrationsCurrentVersion(target);
  status.from = from;
  if (from < input.to)
    throw ApplicationFailure.nonRetryable(
      `the database is at version ${from}, below the rollback target ${input.to}: nothing to roll back (use cutover deploy to go forward)`,
      'RollbackRefused',
    );
  if (from === input.to) {
    status.state = 'up-to-date';
    return { outcome: 'up-to-date', from, to: input.to, failedChecks: [] };
  }
  let backupId: string | undefined;
  if (input.backupTables?.length) {
    backupId = (
      await act.backupRun({
        connection: input.connection,
        tables: input.backupTables,
        label: `rollback-from-${from}`,
      })
    ).id;
    status.backupId = backupId;
  }
  const back = await goBack(
    { connection: input.connection, dir: input.dir, to: input.to, backupId, status },
    decision,
  );
  if (back === 'failed')
    throw ApplicationFailure.nonRetryable(
      `${status.problem ?? 'the down scripts failed'}`,
      'RollbackFailed',
    );
  const failedChecks = input.postChecks?.length
    ? (await act.monitorChecks(input.postChecks))
        .filter((c) => !c.ok)
        .map((c) => `${c.name}: ${c.detail}`)
    : [];
  if (back === 'rolled-back') status.state = 'rolled-back';
  if (failedChecks.length) {
    status.problem = `health check failed after the rollback: ${failedChecks.join('; ')}`;
    describeDeploy(status);
  }
  await condition(allHandlersFinished);
  return { outcome: back, from, to: input.to, backupId, failedChecks };
}
