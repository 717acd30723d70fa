/**
 * The shape every step kind shares (pgroll's op_*.go is the model: one operation, one place).
 * A kind lives in src/steps/<kind>/:
 *   schema.ts  its plan schema (zod) and, when the workflow needs more than the plan's fields,
 *              `resolve` (defaults filled in, a unique id added)
 *   spec.ts    pure facts the workflow bundle may import: docs text, undo policy, stage rules,
 *              activity options (timeouts, heartbeat, retry)
 *   index.ts   I/O: `validate` (read-only, against the live database, before anything changes)
 *              and the `run` / `undo` functions its activities call
 * The registries (schemas.ts, specs.ts, io.ts) list every kind once each; their types demand an
 * entry per kind, so a kind that is missing anywhere fails to compile.
 */
import type { ActivityOptions } from '@temporalio/common';

/** What a step's undo is. Every kind says it explicitly. */
export type UndoPolicy =
  /** The step changes something and has an undo activity; running it twice is harmless. */
  | { kind: 'undo'; text: string }
  /** The step changes nothing that needs undoing (it reads, waits, or another step's undo covers it). */
  | { kind: 'nothing'; text: string }
  /** No undo: the point of no return. The workflow forgets every earlier undo once it ran. */
  | { kind: 'none'; text: string };

/** Facts about the run that a step's activity options depend on. */
export interface OptionsContext {
  /** The run's router: a command or webhook router may take its own timeout. */
  router?: { kind: string; timeoutMs?: number };
}

export interface StepSpec<Step> {
  /** docs/plans.md "fields (default)" column. */
  fields: string;
  /** docs/plans.md "what it does; its undo" column. */
  summary: string;
  undo: UndoPolicy;
  /** Stage rules: a plan runs this kind at most once. */
  once?: boolean;
  /**
   * Stage rules: a plan must have this kind; the text says why. Only blue-green plans: an
   * expand/contract plan (no source / target) requires nothing.
   */
  required?: string;
  /**
   * Stage rules: the kind may run in an expand/contract plan (no source / target, so no new
   * table, no sync, no swap). Absent: it needs a blue-green plan, and says so when put in one.
   */
  standalone?: true;
  /** Stage rules: kinds that must come earlier in the stage list, and why. */
  after?: ReadonlyArray<{ kind: string; why: string }>;
  /** Activity options of the step's run activities (undefined: the step runs no activity). */
  options?: (step: Step, ctx: OptionsContext) => ActivityOptions;
  /** Activity options of its undo activity. */
  undoOptions?: (step: Step, ctx: OptionsContext) => ActivityOptions;
}

/** What a step's `resolve` may consult: the plan's defaults and where the step sits. */
export interface ResolveContext {
  stageName: string;
  /** The plan's connection (sql monitoring checks default to it). */
  connection: string;
  /** verify.sqlChecks: the sqlcheck step's default checks. */
  sqlChecks: unknown[];
  /** True when the plan's run.autoApprove names this gate (or is 'all'). */
  autoGate: (gate: string) => boolean;
  /** Gate names seen so far (approval steps add theirs). */
  gates: Set<string>;
}
