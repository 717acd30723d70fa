/**
 * How a blue-green run behaves: the plan's `run:` section (src/plan/check.ts runSettings) with
 * `cutover start` flags on top. Pure data, shared by the CLI, the plan checker and the workflow.
 */
import type { CheckConfig } from '../monitor/checks';
import type { RouterConfig } from '../router/config';

export interface RunSettings {
  /** Gates approved without a human: a list of gate names, or 'all' (demos, staging). */
  autoApprove: string[] | 'all';
  /** Seconds between checks inside a monitoring window. */
  checkIntervalSeconds: number;
  /** Checks run during every monitoring window, besides the step's own. */
  monitorChecks: CheckConfig[];
  /** What a failed check does: roll back at once, or pause for a human. */
  onBreach: 'rollback' | 'pause';
  /** After 100% and before cleanup, reverse sync stays on this long so a late problem can still roll back. */
  rollbackWindowSeconds: number;
  router?: RouterConfig;
  keepShadowOnAbort: boolean;
  /**
   * After the route goes back to 0% on rollback, wait this long before the sync triggers go, so
   * applications that follow the route by polling (every 2 s by default) stop writing to the
   * new table while its writes still flow back.
   */
  routeDrainSeconds: number;
}

export const defaultRunSettings: RunSettings = {
  autoApprove: [],
  checkIntervalSeconds: 30,
  monitorChecks: [],
  onBreach: 'rollback',
  rollbackWindowSeconds: 86_400,
  keepShadowOnAbort: false,
  routeDrainSeconds: 5,
};
