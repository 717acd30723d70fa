/**
 * The activity kit: the one boundary between Temporal activities and the library. Every step's
 * I/O goes through these helpers, so "open a named connection", "in a transaction", "heartbeat
 * while waiting" and "which errors are worth retrying" each have exactly one definition.
 *
 * Everything here also works outside an activity (tests, the CLI): heartbeats are then dropped,
 * cancellation never comes and there are no heartbeat details from an earlier attempt.
 */
import { Context } from '@temporalio/activity';
import { ApplicationFailure, CancelledFailure, TemporalFailure } from '@temporalio/common';
import type { ClientBase } from 'pg';
import { connectionUrl, openClient } from '../db/connect';
import { UserError } from '../errors';

/** The current activity's context, or undefined when not running inside an activity. */
export function activityContext(): Context | undefined {
  try {
    return Context.current();
  } catch {
    return undefined;
  }
}

export function heartbeat(details?: unknown): void {
  activityContext()?.heartbeat(details);
}

/** Heartbeat details left by a previous attempt of this activity, if any. */
export function previousHeartbeat<T>(): T | undefined {
  return activityContext()?.info.heartbeatDetails as T | undefined;
}

/** The running activity's cancellation signal (it fires only after a heartbeat sees it). */
export function cancellationSignal(): AbortSignal | undefined {
  return activityContext()?.cancellationSignal;
}

/** Throws the cancellation reason when the activity has been cancelled (seen via heartbeats). */
export function throwIfCancelled(): void {
  const signal = cancellationSignal();
  if (signal?.aborted) throw signal.reason;
}

/**
 * Runs `work` while heartbeating every `everyMs`, so one long wait (an index build, a VALIDATE, a
 * hook command) does not look like a dead worker, and so cancellation can reach it: Temporal
 * delivers cancellation only in the answer to a heartbeat. `details` may be a function, called
 * on every beat (e.g. elapsed time).
 */
export async function whileHeartbeating<T>(
  details: unknown,
  work: () => Promise<T>,
  everyMs = 5000,
): Promise<T> {
  const ctx = activityContext();
  if (!ctx) return work();
  const beat = () => ctx.heartbeat(typeof details === 'function' ? details() : details);
  beat();
  const timer = setInterval(beat, everyMs);
  try {
    return await work();
  } finally {
    clearInterval(timer);
  }
}

/** A named connection, optionally with a client the caller already holds. */
export type ConnectionTarget = string | { connection: string; client?: ClientBase };

/**
 * Runs `fn` with a client: the caller's when given (library use, tests), else a fresh one opened
 * from the named connection (activities get names, never URLs) and closed afterwards.
 */
export async function withConnection<T>(
  target: ConnectionTarget,
  appName: string,
  fn: (client: ClientBase) => Promise<T>,
): Promise<T> {
  const { connection, client: given } =
    typeof target === 'string' ? { connection: target, client: undefined } : target;
  if (given) return fn(given);
  const client = await openClient(connectionUrl(connection), appName);
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => {});
  }
}

/**
 * BEGIN … COMMIT, rolling back on any error; `mode` e.g. 'REPEATABLE READ READ ONLY'. With
 * `rollback: true` it always rolls back (read-only probes that create objects to inspect them).
 */
export async function inTransaction<T>(
  client: ClientBase,
  fn: () => Promise<T>,
  options: { mode?: string; rollback?: boolean } = {},
): Promise<T> {
  await client.query(options.mode ? `BEGIN ${options.mode}` : 'BEGIN');
  try {
    const result = await fn();
    await client.query(options.rollback ? 'ROLLBACK' : 'COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  }
}

// --- error mapping ----------------------------------------------------------------------------

/**
 * SQLSTATEs and socket errors that a retry can heal: connection loss, the server shutting down
 * (57P01 admin_shutdown, 57P02, 57P03 cannot_connect_now), lock_timeout (55P03), serialization
 * failure (40001), deadlock (40P01), too many connections (53300), out of resources (53xxx).
 */
const transientSqlStates = new Set(['57P01', '57P02', '57P03', '55P03', '40001', '40P01', '53300']);
const transientSocketCodes = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
]);

function causes(err: unknown): unknown[] {
  const out: unknown[] = [];
  for (let e = err; e !== undefined && e !== null && out.length < 10;) {
    out.push(e);
    e = (e as { cause?: unknown }).cause;
  }
  return out;
}

const codeOf = (e: unknown) =>
  typeof e === 'object' && e !== null && typeof (e as { code?: unknown }).code === 'string'
    ? (e as { code: string }).code
    : undefined;

/** Connection loss, lock timeout, serialization failure, deadlock, too many connections. */
export function isTransient(err: unknown): boolean {
  return causes(err).some((e) => {
    const code = codeOf(e);
    if (code && (transientSqlStates.has(code) || transientSocketCodes.has(code))) return true;
    if (code?.startsWith('08')) return true; // connection_exception class
    const message = e instanceof Error ? e.message : '';
    return /Connection terminated|connection timeout|ECONNRESET/i.test(message);
  });
}

/** A PostgreSQL data error (class 22) or integrity violation (class 23): the data says no. */
export function isDataError(err: unknown): boolean {
  const code = codeOf(err);
  return code !== undefined && /^2[23][0-9A-Z]{3}$/.test(code);
}

/** Class 2B (dependent objects still exist): a DROP that other objects need; retrying cannot help. */
export function isDependencyError(err: unknown): boolean {
  const code = codeOf(err);
  return code !== undefined && /^2B[0-9A-Z]{3}$/.test(code);
}

/**
 * What a failed activity throws to Temporal. Errors that cannot heal (a UserError: bad input or
 * a state that retrying cannot change, a plan error, a PostgreSQL data error) become
 * non-retryable, so the run fails at once and rolls back; transient errors stay retryable; what
 * is already a Temporal failure (cancellation, an explicit ApplicationFailure) passes unchanged.
 */
export function toActivityFailure(err: unknown): unknown {
  if (err instanceof TemporalFailure || err instanceof CancelledFailure) return err;
  if (isTransient(err)) return err;
  if (err instanceof UserError)
    return ApplicationFailure.create({
      message: err.message,
      type: err.name,
      nonRetryable: true,
      cause: err,
    });
  if (isDependencyError(err)) {
    const e = err as Error & { code: string };
    return ApplicationFailure.create({
      message: `${e.message} (SQLSTATE ${e.code}): other objects depend on it; drop or move them first, or leave it`,
      type: 'PostgresDependencyError',
      nonRetryable: true,
      cause: e,
    });
  }
  if (isDataError(err)) {
    const e = err as Error & { code: string };
    return ApplicationFailure.create({
      message: `${e.message} (SQLSTATE ${e.code})`,
      type: 'PostgresDataError',
      nonRetryable: true,
      cause: e,
    });
  }
  return err;
}

/** Wraps an activity function so every error leaves it mapped by toActivityFailure. */
export function activity<A extends unknown[], R>(
  fn: (...args: A) => Promise<R>,
): (...args: A) => Promise<R> {
  const wrapped = async (...args: A): Promise<R> => {
    try {
      return await fn(...args);
    } catch (err) {
      throw toActivityFailure(err);
    }
  };
  // The worker registers activities under their export names; keep the function's own name for
  // stack traces.
  if (fn.name) Object.defineProperty(wrapped, 'name', { value: fn.name });
  return wrapped;
}

export { innermostMessage } from './failure-message';
