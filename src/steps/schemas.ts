/**
 * The step-kind registry, plan side: every kind's schema, in the order docs/plans.md lists them.
 * `StepKind` is derived from this table, and the spec table (specs.ts), the I/O table (io.ts) and
 * the workflow's dispatch table are typed `{ [K in StepKind]: … }`: adding a kind here and
 * forgetting it anywhere else fails to compile. To add a kind, see docs/architecture.md.
 */
import { z } from 'zod';
import * as addColumn from './addColumn/schema';
import * as addConstraint from './addConstraint/schema';
import * as approval from './approval/schema';
import * as backfill from './backfill/schema';
import * as backfillColumn from './backfillColumn/schema';
import * as backup from './backup/schema';
import * as batchMigrate from './batchMigrate/schema';
import * as cleanup from './cleanup/schema';
import * as createIndex from './createIndex/schema';
import * as deprecate from './deprecate/schema';
import * as drop from './drop/schema';
import * as hook from './hook/schema';
import * as index from './index/schema';
import * as monitor from './monitor/schema';
import * as rename from './rename/schema';
import * as route from './route/schema';
import * as setNotNull from './setNotNull/schema';
import * as shadow from './shadow/schema';
import * as sqlcheck from './sqlcheck/schema';
import * as swap from './swap/schema';
import * as sync from './sync/schema';
import * as verify from './verify/schema';
import type { ResolveContext } from './types';

export const stepModules = {
  backup,
  shadow,
  sync,
  backfill,
  index,
  verify,
  sqlcheck,
  approval,
  route,
  monitor,
  hook,
  addColumn,
  backfillColumn,
  setNotNull,
  createIndex,
  addConstraint,
  batchMigrate,
  deprecate,
  drop,
  swap,
  rename,
  cleanup,
};

type Modules = typeof stepModules;
export type StepKind = keyof Modules;

/** Every kind, in registry order. */
export const stepKinds = Object.keys(stepModules) as StepKind[];

/** The plan's step of kind K, as parsed (defaults filled in). */
export type PlanStepOf<K extends StepKind> = z.output<Modules[K]['schema']>;
export type PlanStep = { [K in StepKind]: PlanStepOf<K> }[StepKind];

/** The step of kind K as the workflow receives it: its `resolve` result, or the plan step + id. */
export type ResolvedStepOf<K extends StepKind> = Modules[K] extends {
  resolve: (...args: never[]) => infer R;
}
  ? R
  : PlanStepOf<K> & { id: string };
export type ResolvedStep = { [K in StepKind]: ResolvedStepOf<K> }[StepKind];

type AnySchema = Modules[StepKind]['schema'];
const schemas = stepKinds.map((k) => stepModules[k].schema) as [AnySchema, ...AnySchema[]];

/** One step of a stage: the union of every kind's schema; an unknown kind lists the known ones. */
export const stepSchema = z.discriminatedUnion('kind', schemas, {
  error: (iss) =>
    iss.code === 'invalid_union' ? `kind must be one of ${stepKinds.join(', ')}` : undefined,
});

/** The plan step with its id and defaults, by its kind's `resolve` when it has one. */
export function resolveStep(step: PlanStep, id: string, ctx: ResolveContext): ResolvedStep {
  const mod = stepModules[step.kind] as {
    resolve?: (s: PlanStep, id: string, ctx: ResolveContext) => ResolvedStep;
  };
  return mod.resolve ? mod.resolve(step, id, ctx) : ({ ...step, id } as ResolvedStep);
}
