import { Context } from '@temporalio/activity';

/**
 * The current Temporal activity context, or undefined when the code runs outside a worker (a
 * test, the CLI). Library code uses it to heartbeat and to honour cancellation when it can.
 */
export function currentActivity(): Context | undefined {
  try {
    return Context.current();
  } catch {
    return undefined;
  }
}

/** Cancellation signal of the running activity, if any. */
export function activityCancellationSignal(): AbortSignal | undefined {
  return currentActivity()?.cancellationSignal;
}
