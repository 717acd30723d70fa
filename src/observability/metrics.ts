/**
 * cutover's own Prometheus metrics, kept in the worker process (activities record them as they
 * work; the workflow reports stage, route and check results through a sink). `cutover worker
 * --metrics-port N` serves them with Temporal's runtime metrics; docs/metrics.md lists them.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

export const registry = new Registry();

const rowsCopied = new Counter({
  name: 'cutover_backfill_rows_copied_total',
  help: 'Rows the backfill has copied into the new table (by this worker process)',
  labelNames: ['plan'],
  registers: [registry],
});
const batchSeconds = new Histogram({
  name: 'cutover_backfill_batch_seconds',
  help: 'Time of one backfill batch (copy + commit)',
  labelNames: ['plan'],
  buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  registers: [registry],
});
const rowsPerSecond = new Gauge({
  name: 'cutover_backfill_rows_per_second',
  help: 'Current backfill rate, as the backfill measures it',
  labelNames: ['plan'],
  registers: [registry],
});
const backfillPercent = new Gauge({
  name: 'cutover_backfill_percent',
  help: 'Backfill progress, 0..100 (estimated total from pg_class.reltuples)',
  labelNames: ['plan'],
  registers: [registry],
});
const throttled = new Gauge({
  name: 'cutover_throttled',
  help: '1 while the backfill is held back (paused, or slowed by the throttle), by reason',
  labelNames: ['plan', 'reason'],
  registers: [registry],
});
const lockTimeouts = new Counter({
  name: 'cutover_lock_timeouts_total',
  help: 'DDL attempts that hit lock_timeout and were retried after a backoff',
  registers: [registry],
});
const lockWaitSeconds = new Counter({
  name: 'cutover_lock_wait_seconds_total',
  help: 'Time spent waiting for locks that were not granted (lock_timeout per failed attempt)',
  registers: [registry],
});
const checks = new Counter({
  name: 'cutover_checks_total',
  help: 'Monitoring and SQL checks run, by result (passed / failed)',
  labelNames: ['plan', 'check', 'result'],
  registers: [registry],
});
const routePercent = new Gauge({
  name: 'cutover_route_percent',
  help: 'Percent of traffic routed to the new table',
  labelNames: ['plan'],
  registers: [registry],
});
const stage = new Gauge({
  name: 'cutover_stage',
  help: '1 for the stage a run is in (label stage), 0 for the stages it has left',
  labelNames: ['plan', 'stage'],
  registers: [registry],
});

/** The plan name a workflow id stands for (`cutover-<plan>`); other ids as they are. */
export function planOfWorkflowId(workflowId: string): string {
  return workflowId.startsWith('cutover-') ? workflowId.slice('cutover-'.length) : workflowId;
}

export interface BackfillProgressSample {
  plan: string;
  rowsDone: number;
  percent: number;
  rowsPerSecond: number;
  lastBatchMs: number;
  paused: boolean;
  state: string;
  /** Why the throttle holds the backfill back, when it does (set by throttles that know it). */
  throttleReason?: string | null;
}

/**
 * Records one backfill progress report. Rows are counted from the difference to the previous
 * report of the same backfill, so `last` is per activity attempt (it starts at the checkpoint a
 * resumed backfill continues from, which an earlier attempt already counted).
 */
export function recordBackfillProgress(
  p: BackfillProgressSample,
  last: { rowsDone: number },
): void {
  const labels = { plan: p.plan };
  if (p.rowsDone > last.rowsDone) {
    rowsCopied.inc(labels, p.rowsDone - last.rowsDone);
    if (p.lastBatchMs > 0) batchSeconds.observe(labels, p.lastBatchMs / 1000);
  }
  last.rowsDone = p.rowsDone;
  rowsPerSecond.set(labels, p.state === 'running' ? p.rowsPerSecond : 0);
  backfillPercent.set(labels, p.percent);
  const heldBy = p.paused ? 'paused' : (p.throttleReason ?? '');
  const reason = p.state === 'done' ? '' : heldBy;
  const before = throttleReasons.get(p.plan);
  if (before !== undefined && before !== reason) throttled.remove({ plan: p.plan, reason: before });
  throttleReasons.set(p.plan, reason);
  // One series per plan: value 1 with the reason while held back, 0 with reason "" otherwise.
  throttled.set({ plan: p.plan, reason }, reason ? 1 : 0);
}
const throttleReasons = new Map<string, string>();

export function recordLockTimeout(waitedMs: number): void {
  lockTimeouts.inc();
  lockWaitSeconds.inc(waitedMs / 1000);
}

export function recordChecks(plan: string, results: Array<{ name: string; ok: boolean }>): void {
  for (const r of results) checks.inc({ plan, check: r.name, result: r.ok ? 'passed' : 'failed' });
}

export function recordRoutePercent(plan: string, percent: number): void {
  routePercent.set({ plan }, percent);
}

const currentStage = new Map<string, string>();
export function recordStage(plan: string, name: string): void {
  const previous = currentStage.get(plan);
  if (previous && previous !== name) stage.set({ plan, stage: previous }, 0);
  currentStage.set(plan, name);
  stage.set({ plan, stage: name }, 1);
}
