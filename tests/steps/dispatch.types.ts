/**
 * Type-level test, checked by `tsc --noEmit` (tsconfig includes tests/): the workflow's dispatch
 * table must handle every step kind of the registry. Nothing here runs.
 */
import type { StepHandlers } from '../../workflows/step-handlers';

const noop = async () => {};

// Every kind handled: compiles.
export const complete: StepHandlers = {
  backup: noop,
  shadow: noop,
  sync: noop,
  backfill: noop,
  index: noop,
  verify: noop,
  sqlcheck: noop,
  approval: noop,
  route: noop,
  monitor: noop,
  hook: noop,
  addColumn: noop,
  backfillColumn: noop,
  setNotNull: noop,
  createIndex: noop,
  addConstraint: noop,
  batchMigrate: noop,
  deprecate: noop,
  drop: noop,
  swap: noop,
  rename: noop,
  cleanup: noop,
};

// A kind without a handler (here: hook) does not compile. If this line stops being an error,
// the exhaustiveness check is gone and tsc fails on the unused directive.
// @ts-expect-error Property 'hook' is missing
export const missingHook: StepHandlers = {
  backup: noop,
  shadow: noop,
  sync: noop,
  backfill: noop,
  index: noop,
  verify: noop,
  sqlcheck: noop,
  approval: noop,
  route: noop,
  monitor: noop,
  addColumn: noop,
  backfillColumn: noop,
  setNotNull: noop,
  createIndex: noop,
  addConstraint: noop,
  batchMigrate: noop,
  deprecate: noop,
  drop: noop,
  swap: noop,
  rename: noop,
  cleanup: noop,
};

// A handler receives its own kind's resolved step: a hook handler sees `hook`, not `percent`.
export const typed: StepHandlers = {
  ...complete,
  hook: async (step) => {
    void step.hook.kind;
  },
  route: async (step) => {
    // @ts-expect-error a route step has no hook
    void step.hook;
  },
};
