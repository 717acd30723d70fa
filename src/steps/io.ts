/**
 * The step-kind registry, I/O side: each kind's `validate` (read-only, run by `cutover plan
 * check` and `cutover start` before anything changes) and its run / undo functions, which the
 * activities (activities/registry.ts) expose to the workflow. Never imported by workflow code.
 */
import * as addColumn from './addColumn';
import * as addConstraint from './addConstraint';
import * as approval from './approval';
import * as backfill from './backfill';
import * as backfillColumn from './backfillColumn';
import * as backup from './backup';
import * as batchMigrate from './batchMigrate';
import * as cleanup from './cleanup';
import * as createIndex from './createIndex';
import * as deprecate from './deprecate';
import * as drop from './drop';
import * as hook from './hook';
import * as index from './index/index';
import * as monitor from './monitor';
import * as rename from './rename';
import * as route from './route';
import * as setNotNull from './setNotNull';
import type { ResolvedStep, ResolvedStepOf, StepKind } from './schemas';
import * as shadow from './shadow';
import * as sqlcheck from './sqlcheck';
import * as swap from './swap';
import * as sync from './sync';
import type { ValidateContext } from './validate-context';
import * as verify from './verify';

export interface StepIo<K extends StepKind> {
  validate: (step: ResolvedStepOf<K>, ctx: ValidateContext) => Promise<void>;
}

export const stepIo = {
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
} satisfies { [K in StepKind]: StepIo<K> };

/** Runs the step's own validate. */
export function validateStep(step: ResolvedStep, ctx: ValidateContext): Promise<void> {
  const io = stepIo[step.kind] as StepIo<StepKind> as {
    validate: (s: ResolvedStep, c: ValidateContext) => Promise<void>;
  };
  return io.validate(step, ctx);
}
