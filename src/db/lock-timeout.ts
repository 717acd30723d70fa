import type { ClientBase } from 'pg';
import { recordLockTimeout } from '../observability/metrics';

export interface LockRetryOptions {
  /** lock_timeout for each attempt, in milliseconds. */
  lockTimeoutMs: number;
  /** Attempts in all, the first included. */
  attempts: number;
  /** First backoff; doubles each retry, with jitter, up to maxBackoffMs. */
  initialBackoffMs: number;
  maxBackoffMs: number;
  /** Called before each retry, e.g. to tell the user that a lock is contended. */
  onRetry?: (attempt: number, waitMs: number, error: Error) => void;
}

export const defaultLockRetry: LockRetryOptions = {
  lockTimeoutMs: 3000,
  attempts: 10,
  initialBackoffMs: 200,
  maxBackoffMs: 10_000,
};

/** SQLSTATE 55P03: lock_not_available, raised when lock_timeout expires. */
export function isLockTimeout(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: string }).code === '55P03';
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Runs `work` with lock_timeout set on the client, retrying with exponential backoff and jitter
 * when the lock is not granted. `work` must be safe to repeat: when it runs inside its own
 * transaction, a lock timeout has rolled the whole attempt back.
 */
export async function withLockRetry<T>(
  client: ClientBase,
  work: () => Promise<T>,
  options: Partial<LockRetryOptions> = {},
): Promise<T> {
  const opts = { ...defaultLockRetry, ...options };
  for (let attempt = 1; ; attempt++) {
    await client.query(`SELECT set_config('lock_timeout', $1, false)`, [`${opts.lockTimeoutMs}ms`]);
    try {
      return await work();
    } catch (err) {
      if (!isLockTimeout(err) || attempt >= opts.attempts) throw err;
      const base = Math.min(opts.maxBackoffMs, opts.initialBackoffMs * 2 ** (attempt - 1));
      const wait = Math.round(base / 2 + Math.random() * (base / 2));
      recordLockTimeout(opts.lockTimeoutMs);
      opts.onRetry?.(attempt, wait, err as Error);
      await sleep(wait);
    }
  }
}
