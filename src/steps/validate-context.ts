/**
 * What a step's `validate` gets. It runs inside the plan check's transaction, which is always
 * rolled back: the new table exists there (created from the plan's DDL), nothing else changed.
 * A validate reads the catalog and compiles SQL (under savepoints, src/db/probe.ts), and reports
 * problems instead of throwing them; it never writes.
 */
import type { ClientBase } from 'pg';
import type { PlanFile } from '../plan/schema';
import type { ResolvedChange } from '../plan/types';
import type { ResolvedStep } from './schemas';

export interface ValidateContext {
  client: ClientBase;
  plan: PlanFile;
  /** The blue-green change; absent in an expand/contract plan (no source / target). */
  change?: ResolvedChange;
  readsOnly: boolean;
  /** Where the step sits in the plan file, e.g. `stages[1].steps[0]`, or its default's origin. */
  path: string;
  /** The environment the worker will have (the CLI's: workers need the same variables). */
  env: NodeJS.ProcessEnv;
  problem(path: string, message: string): void;
  /**
   * The plan's steps before this one, in run order: an expand step's pre-flight judges the table
   * as they will have left it (a column added, then filled, then set NOT NULL).
   */
  earlier?: ResolvedStep[];
}

/**
 * The blue-green change a step needs; stage rules keep such kinds out of expand/contract plans
 * (spec `standalone`), so its absence here is a bug, not bad input.
 */
export function changeOf(ctx: ValidateContext): ResolvedChange {
  if (!ctx.change) throw new Error(`${ctx.path}: this step kind needs a blue-green plan`);
  return ctx.change;
}
