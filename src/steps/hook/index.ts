/** Step kind `hook`, I/O. */
import { resolveHeaders } from '../../router/http-request';
import type { ResolvedStepOf } from '../schemas';
import type { ValidateContext } from '../validate-context';

export { hookRun as run, hookUndo as undo } from './action';

/** Secrets the hook's HTTP calls name (headersFromEnv) are set in the environment. */
export async function validate(step: ResolvedStepOf<'hook'>, ctx: ValidateContext) {
  const actions = [
    ['run', step.hook],
    ['undo', step.hook.undo],
  ] as const;
  for (const [field, action] of actions) {
    if (action?.kind !== 'http') continue;
    try {
      resolveHeaders(action.headers, action.headersFromEnv, ctx.env);
    } catch (err) {
      ctx.problem(`${ctx.path}.${field}.headersFromEnv`, (err as Error).message);
    }
  }
}
