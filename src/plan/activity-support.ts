/**
 * Small bridge to the Temporal activity context that also works outside an activity (tests, CLI):
 * there heartbeats are dropped, cancellation never comes and heartbeat details are empty.
 */
import { Context } from '@temporalio/activity';
import type { ClientBase } from 'pg';
import { connectionUrl, openClient } from '../db/connect';

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

/** Throws the cancellation reason when the activity has been cancelled (seen via heartbeats). */
export function throwIfCancelled(): void {
  const signal = activityContext()?.cancellationSignal;
  if (signal?.aborted) throw signal.reason;
}

/**
 * Runs `work` while heartbeating every `everyMs`, so one long statement (an index build, a
 * VALIDATE) does not look like a dead worker.
 */
export async function whileHeartbeating<T>(
  details: unknown,
  work: () => Promise<T>,
  everyMs = 5000,
): Promise<T> {
  if (!activityContext()) return work();
  heartbeat(details);
  const timer = setInterval(() => heartbeat(details), everyMs);
  try {
    return await work();
  } finally {
    clearInterval(timer);
  }
}

/**
 * Runs `fn` with a client: the caller's when given (library use, tests), else a fresh one opened
 * from the named connection (activities get names, never URLs) and closed afterwards.
 */
export async function withClient<T>(
  connection: string,
  given: ClientBase | undefined,
  appName: string,
  fn: (client: ClientBase) => Promise<T>,
): Promise<T> {
  if (given) return fn(given);
  const client = await openClient(connectionUrl(connection), appName);
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => {});
  }
}

/** BEGIN … COMMIT, rolling back on any error. */
export async function inTransaction<T>(
  client: ClientBase,
  fn: () => Promise<T>,
  begin = 'BEGIN',
): Promise<T> {
  await client.query(begin);
  try {
    const result = await fn();
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  }
}
