import type { ActivityInterceptorsFactory } from '@temporalio/worker';
import { maskSecrets } from '../safe-text';

/** Masks credentials in an error and its causes, in place (class and retry semantics kept). */
export function maskError(err: unknown, depth = 0): void {
  if (!(err instanceof Error) || depth > 10) return;
  err.message = maskSecrets(err.message);
  if (err.stack) err.stack = maskSecrets(err.stack);
  maskError(err.cause, depth + 1);
}

/**
 * Activity failures are stored in the workflow history verbatim, and a driver or a user hook
 * may echo a connection string: mask it on the worker, before it leaves the process.
 */
export const maskFailures: ActivityInterceptorsFactory = () => ({
  inbound: {
    execute: async (input, next) => {
      try {
        return await next(input);
      } catch (err) {
        maskError(err);
        throw err;
      }
    },
  },
});
