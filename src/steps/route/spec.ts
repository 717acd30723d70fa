/** Step kind `route`: pure facts (the workflow bundle imports this file). */
import type { ActivityOptions } from '@temporalio/common';
import { boundedBy, shortActivity, undoActivity } from '../options';
import type { ResolvedStepOf } from '../schemas';
import type { OptionsContext, StepSpec } from '../types';

/** Default timeouts of the router kinds (src/router/config.ts). */
const routerTimeoutMs: Record<string, number> = { webhook: 10_000, command: 60_000 };

/** A webhook or command router runs inside the activity: its own timeout bounds it (≤ 1 h). */
function withRouter(base: ActivityOptions, ctx: OptionsContext): ActivityOptions {
  const router = ctx.router;
  if (!router || !(router.kind in routerTimeoutMs)) return base;
  return boundedBy(base, router.timeoutMs ?? routerTimeoutMs[router.kind]!);
}

export const spec: StepSpec<ResolvedStepOf<'route'>> = {
  fields: '`percent` (required, 0 – 100)',
  summary: 'sets the share of traffic on the new table',
  undo: { kind: 'undo', text: 'routes back to 0%' },
  after: [{ kind: 'verify', why: 'traffic moves only to a verified table' }],
  options: (_step, ctx) => withRouter(shortActivity, ctx),
  undoOptions: (_step, ctx) => withRouter(undoActivity, ctx),
};
