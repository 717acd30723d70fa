/**
 * The workflow's dispatch table type: one handler per step kind of the registry. A table that
 * misses a kind does not compile (tests/steps/dispatch.types.ts proves it with @ts-expect-error).
 */
import type { ResolvedStep, ResolvedStepOf, StepKind } from '../src/steps/schemas';

export type StepHandlers = {
  [K in StepKind]: (step: ResolvedStepOf<K>) => Promise<void>;
};

/** Runs the handler of the step's kind. */
export function dispatch(handlers: StepHandlers, step: ResolvedStep): Promise<void> {
  // TypeScript cannot correlate step.kind with the handler's parameter through a union; the
  // mapped type above guarantees they match.
  const handler = handlers[step.kind] as (s: ResolvedStep) => Promise<void>;
  return handler(step);
}
