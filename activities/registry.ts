/**
 * Every activity the worker registers. Each is a thin adapter over src/ (the step modules in
 * src/steps/<kind>/, the backup library, the migration runner), wrapped by the activity kit's
 * `activity()` so an error that cannot heal (UserError, plan error, PostgreSQL data error) fails
 * at once instead of being retried (src/temporal/activity.ts). The workflow imports only the TYPE
 * of this module, so none of this code enters the workflow bundle.
 *
 * The names are part of recorded histories (tests/fixtures/histories): keep them.
 */
import { activity } from '../src/temporal/activity';
import * as backup from '../src/backup/backup';
import * as cleanup from '../src/steps/cleanup/cleanup';
import * as hook from '../src/steps/hook/action';
import * as monitor from '../src/steps/monitor/monitor';
import * as route from '../src/steps/route/route';
import * as shadow from '../src/steps/shadow/table';
import * as rename from '../src/steps/rename/rename';
import * as swap from '../src/steps/swap/swap';
import * as sync from '../src/steps/sync/triggers';
import * as verifying from '../src/steps/verify/tables';
import * as backfill from '../src/steps/backfill/activity';
import { backfillValidate as validateBackfill } from '../src/steps/backfill';
import * as migrations from './migrations';
import * as preflighting from '../src/plan/preflight-activity';
import * as addColumn from '../src/steps/addColumn';
import * as backfillColumn from '../src/steps/backfillColumn';
import * as setNotNull from '../src/steps/setNotNull';
import * as createIndex from '../src/steps/createIndex';
import * as addConstraint from '../src/steps/addConstraint';
import * as batchMigrate from '../src/steps/batchMigrate';
import * as deprecate from '../src/steps/deprecate';
import * as drop from '../src/steps/drop';

// Adapters take exactly the activity's argument: the library functions' optional second
// parameters (a test client, storage seams) must not be reachable from a workflow.
export const backupRun = activity((input: backup.BackupRunInput) => backup.backupRun(input));
export const backupValidate = activity((input: backup.BackupRunInput) =>
  backup.backupValidate(input),
);
export const shadowRun = activity((plan: Parameters<typeof shadow.shadowRun>[0]) =>
  shadow.shadowRun(plan),
);
export const shadowUndo = activity((plan: Parameters<typeof shadow.shadowUndo>[0]) =>
  shadow.shadowUndo(plan),
);
export const shadowBuildIndexes = activity(
  (plan: Parameters<typeof shadow.shadowBuildIndexes>[0]) => shadow.shadowBuildIndexes(plan),
);
export const shadowValidate = activity((plan: Parameters<typeof shadow.shadowValidate>[0]) =>
  shadow.shadowValidate(plan),
);
export const syncRun = activity(sync.syncRun);
export const syncUndo = activity(sync.syncUndo);
export const syncValidate = activity(sync.syncValidate);
export const syncDrain = activity(sync.syncDrain);
export const backfillRun = activity(backfill.backfillRun);
export const backfillControl = activity(backfill.backfillControl);
export const backfillSplitRanges = activity(backfill.backfillSplitRanges);
export const backfillUndo = activity(backfill.backfillUndo);
export const backfillValidate = activity(validateBackfill);
export const verify = activity((input: verifying.VerifyInput) => verifying.verify(input));
export const sqlcheck = activity(verifying.sqlcheck);
export const preflight = activity(preflighting.preflight);
export const routeSet = activity(route.routeSet);
export const routeUndo = activity(route.routeUndo);
export const routeValidate = activity(route.routeValidate);
export const monitorChecks = activity(monitor.monitorChecks);
export const monitorValidate = activity(monitor.monitorValidate);
export const hookRun = activity(hook.hookRun);
export const hookUndo = activity(hook.hookUndo);
export const hookValidate = activity(hook.hookValidate);
export const swapPrepare = activity((input: swap.SwapInput) => swap.swapPrepare(input));
export const swapAttempt = activity((input: swap.SwapInput) => swap.swapAttempt(input));
export const swapBackAttempt = activity((input: swap.SwapInput) => swap.swapBackAttempt(input));
export const swapValidateKeys = activity((input: swap.SwapInput) => swap.swapValidateKeys(input));
export const swapFinish = activity((input: swap.SwapInput) => swap.swapFinish(input));
export const swapDropArchive = activity((input: swap.SwapInput) => swap.swapDropArchive(input));
export const renameAttempt = activity((input: swap.SwapInput) => rename.renameAttempt(input));
export const renameBackAttempt = activity((input: swap.SwapInput) =>
  rename.renameBackAttempt(input),
);
export const cleanupRun = activity(cleanup.cleanupRun);
export const cleanupDropArchive = activity(cleanup.cleanupDropArchive);
export const migrationsApply = activity(migrations.migrationsApply);
export const migrationsCurrentVersion = activity(migrations.migrationsCurrentVersion);
export const migrationsDryRun = activity(migrations.migrationsDryRun);
export const migrationsRollback = activity(migrations.migrationsRollback);
export const migrationsRestore = activity(migrations.migrationsRestore);
export const addColumnRun = activity(addColumn.addColumnRun);
export const addColumnUndo = activity(addColumn.addColumnUndo);
export const backfillColumnRun = activity(backfillColumn.backfillColumnRun);
export const setNotNullRun = activity(setNotNull.setNotNullRun);
export const setNotNullUndo = activity(setNotNull.setNotNullUndo);
export const createIndexRun = activity(createIndex.createIndexRun);
export const createIndexUndo = activity(createIndex.createIndexUndo);
export const addConstraintRun = activity(addConstraint.addConstraintRun);
export const addConstraintUndo = activity(addConstraint.addConstraintUndo);
export const batchMigrateRun = activity(batchMigrate.batchMigrateRun);
export const batchMigrateUndo = activity(batchMigrate.batchMigrateUndo);
export const deprecateRun = activity(deprecate.deprecateRun);
export const deprecateUndo = activity(deprecate.deprecateUndo);
export const dropCheck = activity(drop.dropCheck);
export const dropRun = activity(drop.dropRun);
