// The workflow bundle's entry point: every workflow type the worker runs.
export { blueGreen } from './blue-green';
export { deployMigrations } from './deploy-migrations';
export { deployRollback } from './deploy-rollback';
