/**
 * Versioned migrations as activities for the deploy workflow: the same runner the CLI uses
 * (advisory lock, lock_timeout with retry, safety lint first), reached by a named connection
 * and a migrations directory on the worker, so no credential enters the workflow's history.
 */
import { ApplicationFailure } from '@temporalio/activity';
import { connectionUrl } from '../src/db/connect';
import { UserError } from '../src/errors';
import { migrate, rollback, status, type StepResult } from '../src/migrate';

export interface MigrationsInput {
  connection: string;
  /** Migrations directory on the worker. */
  dir: string;
  to?: number;
  allowUnsafe?: boolean;
}

/** User errors (lint findings, bad files, changed history) will not get better by retrying. */
async function asActivity<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    if (err instanceof UserError) throw ApplicationFailure.nonRetryable(err.message, err.name);
    throw err;
  }
}

/** The current version; the undo of an apply rolls back to it. */
export async function migrationsCurrentVersion(input: MigrationsInput): Promise<number> {
  return asActivity(
    async () => (await status(connectionUrl(input.connection), { dir: input.dir })).current,
  );
}

/** Lint, then apply everything pending in one rolled-back transaction: what would run, and how long it took. */
export async function migrationsDryRun(input: MigrationsInput): Promise<StepResult[]> {
  return asActivity(() =>
    migrate(connectionUrl(input.connection), {
      dir: input.dir,
      to: input.to,
      dryRun: true,
      allowUnsafe: input.allowUnsafe,
    }),
  );
}

export async function migrationsApply(input: MigrationsInput): Promise<StepResult[]> {
  return asActivity(() =>
    migrate(connectionUrl(input.connection), {
      dir: input.dir,
      to: input.to,
      allowUnsafe: input.allowUnsafe,
    }),
  );
}

/** Undo of migrationsApply: the down scripts of everything above `to`, newest first. Idempotent. */
export async function migrationsRollback(
  input: MigrationsInput & { to: number },
): Promise<StepResult[]> {
  return asActivity(() =>
    rollback(connectionUrl(input.connection), { dir: input.dir, to: input.to }),
  );
}
