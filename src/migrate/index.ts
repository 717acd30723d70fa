/**
 * Versioned migrations as a library, e.g. to test one migration the way the seed's testing
 * phase does:
 *
 *   await migrate(url, { dir: 'migrations', to: '0003_create_user_preferences' });
 *   await rollback(url, { dir: 'migrations', to: 2 });
 */
export { migrate, rollback, status, integrityProblems, parseVersion } from './runner';
export type {
  Db,
  MigrateOptions,
  RollbackOptions,
  RunnerOptions,
  StatusReport,
  StatusEntry,
  StepResult,
} from './runner';
export { loadMigrations } from './files';
export type { MigrationFile } from './files';
export { createMigrationFiles } from './new-migration';
export { MigrationError } from './errors';
