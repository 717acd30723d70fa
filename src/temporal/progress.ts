/**
 * Live progress of a run's long activities for the workflow's status and its Web UI details: the
 * backfill and the verification report it to their own workflow with a `progress` signal (the
 * workflow cannot see heartbeat details). Reports are spaced in real time, so the history grows
 * by a bounded number of events whatever the row count: every 15 s for the first 10 minutes,
 * every 30 s up to 400 reports (about 3 hours), then every 5 minutes (`cutover status` reads the
 * heartbeats and is always current).
 */
import type { Context } from '@temporalio/activity';
import { activityContext } from './activity';
import { progressSignal, type ProgressReport } from '../../workflows/definitions';

export type { ProgressReport };

export function reportInterval(reportsSent: number): number {
  if (reportsSent < 40) return 15_000;
  if (reportsSent < 400) return 30_000;
  return 300_000;
}

/** Makes the reporter of one activity attempt: call it with every progress; it sends when due. */
export function progressReporter(): (
  report: Omit<ProgressReport, 'key' | 'attempt' | 'updatedAt'>,
  final?: boolean,
) => void {
  // Outside an activity (a library call, a test) there is no run to report to.
  const ctx = activityContext();
  if (!ctx) return () => {};
  const execution = ctx.info.workflowExecution;
  // An activity run outside a worker (a test's MockActivityEnvironment, a tool) has no client to
  // signal with: its progress goes to heartbeats only.
  let client: Context['client'] | undefined;
  try {
    client = ctx.client;
  } catch {
    client = undefined;
  }
  let sent = 0;
  let lastSent = 0;
  let inFlight = false;
  let lastThrottled: string | null = null;
  return (report, final = false) => {
    if (!execution || !client || inFlight) return;
    const now = Date.now();
    // The first report goes out at once, so the page shows the step as soon as it moves, and so
    // does a change of throttle state (paused, resumed), which an operator waits to see.
    const changed = sent === 0 || final || report.throttled !== lastThrottled;
    if (!changed && now - lastSent < reportInterval(sent)) return;
    lastThrottled = report.throttled;
    sent++;
    lastSent = now;
    inFlight = true;
    const full: ProgressReport = {
      ...report,
      key: ctx.info.activityId,
      attempt: ctx.info.attempt,
      updatedAt: new Date(now).toISOString(),
    };
    client.workflow
      .getHandle(execution.workflowId, execution.runId)
      .signal(progressSignal, full)
      // Progress is for show: a closed workflow or a lost connection must not fail the copy.
      .catch(() => {})
      .finally(() => (inFlight = false));
  };
}
