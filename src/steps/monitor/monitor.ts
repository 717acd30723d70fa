/**
 * Step kind `monitor`: the checks the workflow runs on every tick of a timed monitoring window.
 * Each activity is short and never fails because a check failed: the result says so, and the
 * workflow decides (roll back, or pause for a human). Only a worker-side problem throws.
 */
import { connectionUrl } from '../../db/connect';
import { UserError } from '../../errors';
import {
  parseCheck,
  runCheck,
  runChecks,
  type CheckConfig,
  type CheckResult,
} from '../../monitor/checks';
import { cancellationSignal } from '../../temporal/activity';
import { resolveHeaders } from '../../router/http-request';

/** Read-only: every check is well-formed and its connection / header variables are configured. */
export async function monitorValidate(checks: CheckConfig[]): Promise<{ count: number }> {
  checks.forEach((config, i) => {
    const where = `checks[${i}]`;
    let check;
    try {
      check = parseCheck(config);
    } catch (err) {
      throw new UserError(`${where}: ${(err as Error).message}`);
    }
    try {
      if (check.kind === 'sql') connectionUrl(check.connection);
      else resolveHeaders(check.headers, check.headersFromEnv);
    } catch (err) {
      throw new UserError(`${where}: ${(err as Error).message}`);
    }
  });
  return { count: checks.length };
}

/** Runs one check. */
export async function monitorCheck(check: CheckConfig): Promise<CheckResult> {
  return runCheck(check, { signal: cancellationSignal() });
}

/** Runs all checks of one tick concurrently; results in the same order as the checks. */
export async function monitorChecks(checks: CheckConfig[]): Promise<CheckResult[]> {
  return runChecks(checks, { signal: cancellationSignal() });
}
