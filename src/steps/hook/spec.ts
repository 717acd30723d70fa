/** Step kind `hook`: pure facts (the workflow bundle imports this file). */
import { boundedBy, shortActivity, undoActivity } from '../options';
import type { ResolvedStepOf } from '../schemas';
import type { StepSpec } from '../types';

/** The action defaults of ./schema.ts: a command may run 10 minutes, an HTTP call 1 minute. */
const defaultTimeoutMs = { command: 600_000, http: 60_000 } as const;

const timeoutOf = (a: { kind: 'command' | 'http'; timeoutMs?: number }) =>
  a.timeoutMs ?? defaultTimeoutMs[a.kind];

export const spec: StepSpec<ResolvedStepOf<'hook'>> = {
  fields: '`run` (required), `undo` (none)',
  summary: 'runs a command or calls a URL',
  standalone: true,
  undo: { kind: 'undo', text: 'runs the `undo` action, if given' },
  // A hook may run as long as its own timeoutMs (up to 24 h), not the 5 minutes of a quick step.
  options: (step) => boundedBy(shortActivity, timeoutOf(step.hook)),
  undoOptions: (step) =>
    boundedBy(undoActivity, step.hook.undo ? timeoutOf(step.hook.undo) : 0, 10 * 60_000),
};
