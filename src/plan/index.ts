/** Plan files: load, validate, check against the database, resolve for the workflow. */
export { loadPlanFile, parsePlan, PlanError, formatProblem, type PlanProblem } from './load';
export {
  checkPlan,
  resolvePlan,
  resolveRunnablePlan,
  runnablePlan,
  runSettings,
  type CheckReport,
  type CheckOptions,
} from './check';
export {
  defaultStages,
  resolveStages,
  type ResolvedHookStep,
  type ResolvedStage,
  type ResolvedStep,
} from './stages';
export type {
  PlanFile,
  PlanHookAction,
  PlanMonitorCheck,
  PlanRun,
  PlanStage,
  PlanStep,
  SqlCheck,
  StepKind,
} from './schema';
export { planIdentity } from './resolved';
export type { ExpandPlan, PlanRunSettings, ResolvedPlan, RunnablePlan } from './resolved';
export type { DeferredObject } from './catalog';
export type { ResolvedChange, ColumnMapping, TableRef } from './types';
