/** Plan files: load, validate, check against the database, resolve for the workflow. */
export { loadPlanFile, parsePlan, PlanError, formatProblem, type PlanProblem } from './load';
export { checkPlan, resolvePlan, type CheckReport, type CheckOptions } from './check';
export { defaultStages, resolveStages, type ResolvedStage, type ResolvedStep } from './stages';
export type { PlanFile, PlanStage, PlanStep, SqlCheck, StepKind } from './schema';
export type { ResolvedPlan } from './resolved';
export type { DeferredObject } from './catalog';
export type { ResolvedChange, ColumnMapping, TableRef } from './types';
