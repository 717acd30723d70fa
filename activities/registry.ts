/**
 * Every activity the worker registers, grouped by concern in their own modules. The workflow
 * imports only the TYPE of this object, so none of this code enters the workflow bundle.
 */
export { backupRun, backupValidate } from './backup';
export { shadowRun, shadowUndo, shadowBuildIndexes, shadowValidate } from './shadow';
export { syncRun, syncUndo, syncValidate } from './sync-triggers';
export {
  backfillRun,
  backfillControl,
  backfillSplitRanges,
  backfillUndo,
  backfillValidate,
} from './backfill';
export { verify, sqlcheck } from './verify';
export { routeSet, routeUndo, routeValidate } from './route';
export { monitorChecks, monitorValidate } from './monitor';
export { hookRun, hookUndo, hookValidate } from './hook';
export { cleanupRun, cleanupDropArchive } from './cleanup';
export {
  migrationsApply,
  migrationsCurrentVersion,
  migrationsDryRun,
  migrationsRollback,
} from './migrations';
export {
  swapPrepare,
  swapAttempt,
  swapBackAttempt,
  swapValidateKeys,
  swapFinish,
  swapDropArchive,
} from './swap';
