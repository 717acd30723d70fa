/**
 * The versioned-migration deploy, as the seed's staging runbook: backup → dry run (which runs the
 * safety lint first) → approval → apply → post-checks. A failed apply or post-check, or an abort,
 * runs the down scripts of what this run applied, back to the version it started from.
 */
import {
  ApplicationFailure,
  allHandlersFinished,
  condition,
  setHandler,
} from '@temporalio/workflow';
import type { CheckConfig } from '../src/monitor/checks';
import {
  abortSignal,
  approveSignal,
  approveUpdate,
  deployStatusQuery,
  type AbortRequest,
  type DeployStatus,
} from './definitions';
import {
  describeDeploy,
  goBack,
  innermost,
  migrationActivities as act,
  wayBackHandlers,
} from './deploy-way-back';

export interface DeployInput {
  connection: string;
  /** Migrations directory on the workers. */
  dir: string;
  to?: number;
  allowUnsafe?: boolean;
  /** Wait for `approve` (gate "apply") after the dry run. */
  requireApproval?: boolean;
  /** Tables to back up with pg_dump before anything changes. */
  backupTables?: string[];
  /** Checks after the apply (HTTP health URL, SQL threshold, Prometheus); a failure rolls back. */
  postChecks?: CheckConfig[];
}

export interface DeployResult {
  /**
   * `restored`: the down scripts could not run and the operator restored the backup;
   * `failed`: they could not run and the operator left the database as it is.
   */
  outcome: 'applied' | 'up-to-date' | 'rolled-back' | 'restored' | 'failed';
  from: number;
  applied: string[];
  reason?: string;
  backupId?: string;
}

export async function deployMigrations(input: DeployInput): Promise<DeployResult> {
  const target = {
    connection: input.connection,
    dir: input.dir,
    to: input.to,
    allowUnsafe: input.allowUnsafe,
  };
  const status: DeployStatus = { state: 'running', applied: [] };
  setHandler(deployStatusQuery, () => status);
  const { decision } = wayBackHandlers();
  let abort: AbortRequest | undefined;
  let approved = false;
  setHandler(abortSignal, (req) => void (abort ??= req));
  let waiting = false;
  setHandler(approveSignal, (req) => void (approved ||= !req.gate || req.gate === 'apply'));
  setHandler(
    approveUpdate,
    () => {
      approved = true;
      return 'apply';
    },
    {
      validator: (req) => {
        if (req.gate && req.gate !== 'apply')
          throw new Error(`this deploy has one gate, "apply"; got "${req.gate}"`);
        if (!waiting) throw new Error('gate "apply" is not waiting (no gate is waiting now)');
      },
    },
  );

  const from = await act.migrationsCurrentVersion(target);
  status.from = from;
  let backupId: string | undefined;
  if (input.backupTables?.length) {
    backupId = (
      await act.backupRun({
        connection: input.connection,
        tables: input.backupTables,
        label: `deploy-from-${from}`,
      })
    ).id;
    status.backupId = backupId;
  }
  // The dry run lints first and applies in a rolled-back transaction: bad SQL and unsafe
  // operations stop the deploy here, before anything has changed.
  const planned = await act.migrationsDryRun(target).catch((err: unknown) => {
    throw ApplicationFailure.nonRetryable(
      `refused before any change: ${innermost(err)}`,
      'DeployRefused',
    );
  });
  if (!planned.length) {
    status.state = 'up-to-date';
    return { outcome: 'up-to-date', from, applied: [] };
  }
  if (input.requireApproval) {
    waiting = true;
    status.state = 'waiting-for-approval';
    status.next = ['cutover approve <run> apply'];
    describeDeploy(status);
    await condition(() => approved || abort !== undefined);
    waiting = false;
    status.next = undefined;
    if (abort) {
      status.state = 'rolled-back';
      return {
        outcome: 'rolled-back',
        from,
        applied: [],
        reason: `aborted before apply: ${abort.reason}`,
      };
    }
  }

  let reason: string | undefined;
  let applied: string[] = [];
  status.state = 'running';
  try {
    applied = (await act.migrationsApply(target)).map((r) => r.id);
    status.applied = applied;
    const failed = input.postChecks?.length
      ? (await act.monitorChecks(input.postChecks)).filter((c) => !c.ok)
      : [];
    if (failed.length)
      reason = `post-check failed: ${failed.map((c) => `${c.name}: ${c.detail}`).join('; ')}`;
    else if (abort) reason = `aborted: ${abort.reason}`;
  } catch (err) {
    reason = `apply failed: ${innermost(err)}`;
  }
  if (reason === undefined) {
    status.state = 'applied';
    describeDeploy(status);
    await condition(allHandlersFinished);
    return { outcome: 'applied', from, applied };
  }
  // What this run applied goes back with its down scripts; when they cannot run, the backup
  // taken above is the way back, on an operator's word.
  const back = await goBack(
    { connection: input.connection, dir: input.dir, to: from, backupId, status },
    decision,
  );
  await condition(allHandlersFinished);
  const what =
    back === 'rolled-back'
      ? `rolled back to version ${from}`
      : back === 'restored'
        ? `down scripts failed; restored backup ${backupId}`
        : 'down scripts failed; database left as it is';
  if (reason.startsWith('apply failed') || back === 'failed')
    throw ApplicationFailure.nonRetryable(`${reason}; ${what}`, 'DeployFailed');
  if (back === 'rolled-back') status.state = 'rolled-back';
  return { outcome: back, from, applied, reason, backupId };
}
