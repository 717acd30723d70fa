/**
 * Messages and visibility keys shared by the workflow, the worker and the CLI (which imports
 * this module too), so names can never drift apart. The plain signal names also work from the
 * `temporal` CLI, e.g.
 *   temporal workflow signal --workflow-id cutover-widen_orders_id --name approve --input '{"gate":"shift"}'
 */
import { defineQuery, defineSignal, defineUpdate, type Sinks } from '@temporalio/workflow';
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
/**
 * Who reports progress: the table backfill, the verification, a column backfill, a batch data
 * migration, or an expand step's DDL while it waits for a lock (`throttled` says on whom).
 */
export type ProgressActivity = 'backfill' | 'verify' | 'backfillColumn' | 'batchMigrate' | 'ddl';

/** What a backfill or verify activity reports to its workflow (see activities/progress.ts). */
export interface ProgressReport {
  /** The reporting activity (one per key range when the backfill runs in parallel). */
  key: string;
  activity: ProgressActivity;
  rowsDone: number;
  total: number | null;
  rowsPerSecond: number | null;
  /** Why the backfill is held back, when it is ("paused", or the throttle's reason). */
  throttled: string | null;
  attempt: number;
  updatedAt: string;
}

/** The reports of the running step summed up, as the status and the Web UI show them. */
export interface LiveProgress {
  activity: ProgressActivity;
  rowsDone: number;
  total: number | null;
  percent: number | null;
  rowsPerSecond: number | null;
  etaSeconds: number | null;
  throttled: string | null;
  /** Highest attempt among the reporting activities: above 1, a retry is under way. */
  attempt: number;
  updatedAt: string;
}

export interface ApproveRequest {
  /** Gate to approve; optional when exactly one gate is waiting. */
  gate?: string;
  by?: string;
}
export interface AbortRequest {
  reason: string;
  /** Keep the shadow table (and its rows) for inspection instead of dropping it. */
  keepShadow?: boolean;
}
export interface ThrottleRequest {
  batchSize?: number;
  sleepMs?: number;
  adaptive?: boolean;
  targetBatchMs?: number;
  /** false: ignore the plan's load budget (fixed batch size and sleep); true: obey it again. */
  loadBudget?: boolean;
}

export const approveSignal = defineSignal<[ApproveRequest]>('approve');
export const abortSignal = defineSignal<[AbortRequest]>('abort');
export const pauseSignal = defineSignal('pause');
export const resumeSignal = defineSignal('resume');
export const throttleSignal = defineSignal<[ThrottleRequest]>('throttle');
/** Sent by the backfill and verify activities themselves, not by people. */
export const progressSignal = defineSignal<[ProgressReport]>('progress');

/** Sums the reports of the activities of one step. */
export function sumProgress(reports: ProgressReport[]): LiveProgress | undefined {
  if (!reports.length) return undefined;
  const totalKnown = reports.every((r) => r.total !== null);
  const rowsDone = reports.reduce((n, r) => n + r.rowsDone, 0);
  const total = totalKnown ? reports.reduce((n, r) => n + (r.total ?? 0), 0) : null;
  const rated = reports.filter((r) => r.rowsPerSecond !== null);
  const rate = rated.length ? rated.reduce((n, r) => n + (r.rowsPerSecond ?? 0), 0) : null;
  return {
    activity: reports[0]!.activity,
    rowsDone,
    total,
    percent: total ? Math.min(100, Math.round((rowsDone / total) * 1000) / 10) : null,
    rowsPerSecond: rate === null ? null : Math.round(rate),
    etaSeconds: total && rate ? Math.max(0, Math.round((total - rowsDone) / rate)) : null,
    throttled: reports.find((r) => r.throttled)?.throttled ?? null,
    attempt: Math.max(...reports.map((r) => r.attempt)),
    updatedAt: reports
      .map((r) => r.updatedAt)
      .sort()
      .at(-1)!,
  };
}

/** Same as the signals, but answered: rejected at once when the gate is not waiting or the values are nonsense. */
export const approveUpdate = defineUpdate<string, [ApproveRequest]>('approveGate');
export const throttleUpdate = defineUpdate<ThrottleRequest, [ThrottleRequest]>('setThrottle');

export type RunState =
  'running' | 'waiting' | 'paused' | 'rolling-back' | 'rolled-back' | 'completed' | 'failed';

export interface CheckSummary {
  name: string;
  ok: boolean;
  detail: string;
  at: string;
}

export interface RunStatus {
  plan: string;
  /** The table changed (an expand/contract plan: the tables its steps change, comma-separated). */
  table: string;
  /** `expand`: an expand/contract plan (no new table, so no route and no swap); absent: blue-green. */
  kind?: 'expand';
  state: RunState;
  stage?: string;
  step?: string;
  stepsDone: string[];
  stepsTotal: number;
  routePercent: number;
  waitingGates: string[];
  paused: boolean;
  throttle: ThrottleRequest;
  lastChecks: CheckSummary[];
  /** Set while a monitoring window or the rollback window runs. */
  windowEndsAt?: string;
  /** Rows copied when the backfill step finished. */
  rowsCopied?: number;
  /**
   * While the backfill or verification runs: their heartbeats summed up, refreshed by the
   * workflow every 15–30 s (the heartbeat details themselves are newer still).
   */
  progress?: LiveProgress;
  undone: string[];
  abortReason?: string;
  /**
   * Why the run failed (innermost cause; for a data error it names the offending key), set when
   * the step fails, before the undos run.
   */
  error?: string;
  /** The cut-over, once the swap step has started. */
  swap?: SwapStatus;
  /**
   * Set when cleanup started (the point of no return): from then on an abort is refused and the
   * run ends as completed.
   */
  pointOfNoReturn?: string;
  /** An abort that arrived after the point of no return: recorded, not acted on. */
  abortRefused?: string;
  /** What finished steps did, where there is more to say than "done" (step id → one line). */
  results?: Record<string, string>;
}

export interface SwapBlocker {
  pid: number;
  ageSeconds: number;
  state: string;
  waiting: boolean;
  query: string;
}

export interface SwapStatus {
  /**
   * waiting: trying to take the locks; swapped: the new table has the name; swapped-back: undone
   * by a swap in the other direction; not-swapped: rolled back before any swap committed.
   */
  state: 'waiting' | 'swapped' | 'swapping-back' | 'swapped-back' | 'not-swapped' | 'finished';
  /** The old table's name after the swap. */
  archive: string;
  attempts: number;
  /** Why the last attempt did not swap: a long transaction on the tables, or the lock timeout. */
  waitingFor?: string;
  blockers?: SwapBlocker[];
  swappedAt?: string;
  /** False when the plan has no down mapping: the swap itself is then the point of no return. */
  reversible: boolean;
  /**
   * 'rename' when the plan finishes with a rename step: the new table keeps its own name and the
   * old name is a view over it until cleanup (absent: a swap).
   */
  mode?: 'rename';
}

export const statusQuery = defineQuery<RunStatus>('status');

/** The way back when down scripts cannot run: restore this deploy's backup… */
export interface RestoreRequest {
  /** Copy the tables as they are now into this schema first, so no later write is lost for good. */
  sideSchema?: string;
}
export const restoreSignal = defineSignal<[RestoreRequest]>('restore');
/** …or leave the database as it is and finish the deploy as failed. */
export const leaveSignal = defineSignal('leave');

export type DeployState =
  | 'running'
  | 'waiting-for-approval'
  | 'rolling-back'
  | 'waiting-for-restore'
  | 'restoring'
  | 'applied'
  | 'up-to-date'
  | 'rolled-back'
  | 'restored'
  | 'failed';

export interface DeployStatus {
  state: DeployState;
  /** The version the run started from (a deploy) or the version it goes back to (a rollback). */
  from?: number;
  to?: number;
  applied: string[];
  /** The backup this run took before changing anything, if any. */
  backupId?: string;
  /** Why the run is waiting or failed. */
  problem?: string;
  /** What an operator can do now, as CLI commands. */
  next?: string[];
}
export const deployStatusQuery = defineQuery<DeployStatus>('deployStatus');

/** Custom search attributes: registered by `cutover dev`; on a cluster see docs/temporal.md. */
export const planSearchAttribute = defineSearchAttributeKey(
  'CutoverPlan',
  SearchAttributeType.KEYWORD,
);
export const tableSearchAttribute = defineSearchAttributeKey(
  'CutoverTable',
  SearchAttributeType.KEYWORD,
);
export const stageSearchAttribute = defineSearchAttributeKey(
  'CutoverStage',
  SearchAttributeType.KEYWORD,
);

export const TASK_QUEUE = 'cutover';

/** One workflow per plan name: a second start of the same plan is refused while one is open. */
export function workflowIdFor(planName: string): string {
  return `cutover-${planName}`;
}

export const THROTTLE_LIMITS = {
  batchSize: { min: 1, max: 1_000_000 },
  sleepMs: { min: 0, max: 600_000 },
  targetBatchMs: { min: 1, max: 600_000 },
} as const;

/** Shared by the update validator and the CLI, so a bad value is refused before it is sent. */
export function throttleProblems(t: ThrottleRequest): string[] {
  const problems: string[] = [];
  const keys = Object.keys(t).filter((k) => (t as Record<string, unknown>)[k] !== undefined);
  if (keys.length === 0)
    problems.push('give at least one of batchSize, sleepMs, adaptive, targetBatchMs, loadBudget');
  for (const key of ['batchSize', 'sleepMs', 'targetBatchMs'] as const) {
    const v = t[key];
    if (v === undefined) continue;
    const { min, max } = THROTTLE_LIMITS[key];
    if (!Number.isInteger(v) || v < min || v > max)
      problems.push(`${key} must be a whole number from ${min} to ${max}, got ${v}`);
  }
  if (t.adaptive !== undefined && typeof t.adaptive !== 'boolean')
    problems.push('adaptive must be true or false');
  if (t.loadBudget !== undefined && typeof t.loadBudget !== 'boolean')
    problems.push('loadBudget must be true or false');
  return problems;
}

/**
 * What the workflow tells the worker's metrics (stage, route, check results). A sink call is not
 * recorded in the history and not repeated on replay, so it cannot affect determinism.
 */
export interface CutoverSinks extends Sinks {
  cutoverMetrics: {
    stage(stage: string): void;
    routePercent(percent: number): void;
    checks(results: Array<{ name: string; ok: boolean }>): void;
  };
}
