/**
 * The whole plan as the workflow receives it once checked against the database: plain JSON, no
 * credentials (the connection is a name). `change` is the data-plane contract (types.ts); the rest
 * drives the stages.
 */
import type { RunSettings } from './run-settings';
import type { DeferredObject } from './catalog';
import type { Dependent } from '../swap/dependents';
import type { PlanFile, PlanMonitorCheck } from './schema';
import type { ResolvedStage } from './stages';
import type { ResolvedChange } from './types';

/**
 * The plan's `run:` section as the workflow's RunSettings (every field filled with its default
 * except `router`, absent = the PostgreSQL route table alone). Approvals are not here: the plan's
 * run.autoApprove is folded into each approval step's `auto`. The CLI's explicit flags override
 * these values: `{ ...defaultRunSettings, ...plan.settings, ...flagsGiven }`.
 */
export type PlanRunSettings = Pick<
  RunSettings,
  | 'checkIntervalSeconds'
  | 'onBreach'
  | 'monitorChecks'
  | 'rollbackWindowSeconds'
  | 'keepShadowOnAbort'
> &
  Pick<Partial<RunSettings>, 'router'>;

export interface ResolvedPlan {
  version: 1;
  /** Absent: a blue-green change (recorded runs never had the field). */
  kind?: undefined;
  /** Base name of the plan file it came from, for messages. */
  fileName: string;
  change: ResolvedChange;
  /** No `down` mapping: writes stay on the old table; only reads may shift. */
  readsOnly: boolean;
  /**
   * Statements that create the new table, in order (CREATE TABLE, then CREATE INDEX / ALTER
   * TABLE). Unqualified names resolve with the target's schema first on the search_path.
   */
  targetDdl: string[];
  /**
   * Secondary indexes and constraints the shadow step defers to after the backfill, as found
   * when the plan was checked (the shadow step records the authoritative list on the table).
   */
  deferred: DeferredObject[];
  backfill: PlanFile['backfill'];
  verify: PlanFile['verify'];
  shift: {
    readsOnly: boolean;
    steps: Array<{ percent: number; monitorSeconds: number }>;
    /** Monitoring checks of every default shift window (already inside the monitor steps). */
    checks: PlanMonitorCheck[];
  };
  stages: ResolvedStage[];
  /**
   * What points at the old table (or belongs to it) and what the swap does with each, as found
   * by the plan check. Optional: runs recorded before it existed.
   */
  dependents?: Dependent[];
  /** Run settings from the plan's `run:` section. Optional: runs recorded before it existed. */
  settings?: PlanRunSettings;
}

/**
 * An expand/contract plan (no `source` / `target`): its steps change the tables they name in
 * place (add a column, fill it, NOT NULL, index, constrain, batch-migrate, deprecate, drop),
 * with approvals, hooks, monitoring windows and a backup around them. No shadow table, no sync,
 * no swap: the workflow runs the same stages, gates, signals and undo-in-reverse without them.
 */
export interface ExpandPlan {
  version: 1;
  kind: 'expand';
  fileName: string;
  /** Plan name: names the workflow (`cutover-<name>`) and the steps' ledger rows. */
  name: string;
  /** Named connection (see src/db/connect.ts). */
  connection: string;
  /** Every table the steps change, `schema.table`, in the order the plan first names them. */
  tables: string[];
  /** `backfill.loadBudget` governs the backfillColumn steps, as it does the table backfill. */
  backfill: PlanFile['backfill'];
  stages: ResolvedStage[];
  settings?: PlanRunSettings;
}

/** What the blueGreen workflow runs: a blue-green table change or an expand/contract plan. */
export type RunnablePlan = ResolvedPlan | ExpandPlan;

/** The plan's name and connection, whichever its kind. */
export function planIdentity(plan: RunnablePlan): { name: string; connection: string } {
  return 'kind' in plan && plan.kind === 'expand'
    ? { name: plan.name, connection: plan.connection }
    : { name: plan.change.name, connection: plan.change.connection };
}
