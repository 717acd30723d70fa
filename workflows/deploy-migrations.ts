/**
 * The versioned-migration deploy, as the seed's staging runbook: backup → dry run (which runs the
 * safety lint first) → approval → apply → post-checks. A failed apply or post-check, or an abort,
 * runs the down scripts of what this run applied, back to the version it started from.
 */
import {
  ApplicationFailure,
  CancellationScope,
  allHandlersFinished,
  condition,
  proxyActivities,
  setHandler,
} from '@temporalio/workflow';
import type * as activities from '../activities/registry';
import type { CheckConfig } from '../src/monitor/checks';
import { abortSignal, approveSignal, approveUpdate, type AbortRequest } from './definitions';
import { innermostMessage } from '../src/temporal/failure-message';

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
  outcome: 'applied' | 'up-to-date' | 'rolled-back';
  from: number;
  applied: string[];
  reason?: string;
}

const act = proxyActivities<typeof activities>({
  startToCloseTimeout: '1 hour',
  retry: { initialInterval: '2s', maximumInterval: '1 minute', maximumAttempts: 5 },
});

export async function deployMigrations(input: DeployInput): Promise<DeployResult> {
  const target = {
    connection: input.connection,
    dir: input.dir,
    to: input.to,
    allowUnsafe: input.allowUnsafe,
  };
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
  if (input.backupTables?.length) {
    await act.backupRun({
      connection: input.connection,
      tables: input.backupTables,
      label: `deploy-from-${from}`,
    });
  }
  // The dry run lints first and applies in a rolled-back transaction: bad SQL and unsafe
  // operations stop the deploy here, before anything has changed.
  const planned = await act.migrationsDryRun(target).catch((err: unknown) => {
    throw ApplicationFailure.nonRetryable(
      `refused before any change: ${innermost(err)}`,
      'DeployRefused',
    );
  });
  if (!planned.length) return { outcome: 'up-to-date', from, applied: [] };
  if (input.requireApproval) {
    waiting = true;
    await condition(() => approved || abort !== undefined);
    waiting = false;
    if (abort)
      return {
        outcome: 'rolled-back',
        from,
        applied: [],
        reason: `aborted before apply: ${abort.reason}`,
      };
  }

  let reason: string | undefined;
  let applied: string[] = [];
  try {
    applied = (await act.migrationsApply(target)).map((r) => r.id);
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
    await condition(allHandlersFinished);
    return { outcome: 'applied', from, applied };
  }
  // What this run applied goes back with its down scripts; the runner refuses up front when
  // one is missing, and the backup taken above is the way back then.
  await CancellationScope.nonCancellable(() => act.migrationsRollback({ ...target, to: from }));
  await condition(allHandlersFinished);
  if (reason.startsWith('apply failed'))
    throw ApplicationFailure.nonRetryable(
      `${reason}; rolled back to version ${from}`,
      'DeployFailed',
    );
  return { outcome: 'rolled-back', from, applied, reason };
}

const innermost = innermostMessage;
