/**
 * Versioned migrations as activities for the deploy workflow: the same runner the CLI uses
 * (advisory lock, lock_timeout with retry, safety lint first), reached by a named connection
 * and a migrations directory on the worker, so no credential enters the workflow's history.
 * Errors are mapped by the activity kit (activities/registry.ts): a UserError (lint findings, bad
 * files, changed history) will not get better by retrying and fails at once.
 */
import { connectionUrl } from '../src/db/connect';
import { migrate, rollback, status, type StepResult } from '../src/migrate';

export interface MigrationsInput {
  connection: string;
  /** Migrations directory on the worker. */
  dir: string;
  to?: number;
  allowUnsafe?: boolean;
}

/** The current version; the undo of an apply rolls back to it. */
export async function migrationsCurrentVersion(input: MigrationsInput): Promise<number> {
  return (await status(connectionUrl(input.connection), { dir: input.dir })).current;
}

/** Lint, then apply everything pending in one rolled-back transaction: what would run, and how long it took. */
export async function migrationsDryRun(input: MigrationsInput): Promise<StepResult[]> {
  return migrate(connectionUrl(input.connection), {
    dir: input.dir,
    to: input.to,
    dryRun: true,
    allowUnsafe: input.allowUnsafe,
  });
}

export async function migrationsApply(input: MigrationsInput): Promise<StepResult[]> {
  return migrate(connectionUrl(input.connection), {
    dir: input.dir,
    to: input.to,
    allowUnsafe: input.allowUnsafe,
  });
}

/** Undo of migrationsApply: the down scripts of everything above `to`, newest first. Idempotent. */
export async function migrationsRollback(
  input: MigrationsInput & { to: number },
): Promise<StepResult[]> {
  return rollback(connectionUrl(input.connection), { dir: input.dir, to: input.to });
}
