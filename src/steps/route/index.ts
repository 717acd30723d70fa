/** Step kind `route`, I/O. */
import { resolveHeaders } from '../../router/http-request';
import type { ResolvedStepOf } from '../schemas';
import type { ValidateContext } from '../validate-context';

export { routeSet as run, routeUndo as undo } from './route';

/** The run's router can be called: a webhook's secret headers are set in the environment. */
export async function validate(_step: ResolvedStepOf<'route'>, ctx: ValidateContext) {
  const router = ctx.plan.run.router;
  if (router?.kind !== 'webhook') return;
  try {
    resolveHeaders(router.headers, router.headersFromEnv, ctx.env);
  } catch (err) {
    ctx.problem('run.router.headersFromEnv', (err as Error).message);
  }
}
