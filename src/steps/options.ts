/**
 * Activity option presets the step specs build on. Pure data: the workflow bundle imports it.
 * Every undo keeps trying (an undo that gives up leaves the database half rolled back); every
 * long activity heartbeats, so a dead worker is noticed within heartbeatTimeout.
 */
import type { ActivityOptions } from '@temporalio/common';
import { ActivityCancellationType } from '@temporalio/common';

/** Quick DDL and single calls: seconds, rarely minutes. */
export const shortActivity: ActivityOptions = {
  startToCloseTimeout: '5 minutes',
  retry: { initialInterval: '1s', maximumInterval: '30s', maximumAttempts: 10 },
  cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
};

/** Index builds, backups and pre-flight: hours long, resumed from heartbeats. */
export const longActivity: ActivityOptions = {
  startToCloseTimeout: '24 hours',
  heartbeatTimeout: '30 seconds',
  retry: { initialInterval: '2s', maximumInterval: '1 minute', maximumAttempts: 20 },
  cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
};

/**
 * Backfill and verification: hours long like longActivity, but they heartbeat every 2 s on a
 * timer whatever a batch takes, so a killed worker's key range is handed to another within
 * about 10 s (heartbeat timeout + 1 s backoff).
 */
export const copyingActivity: ActivityOptions = {
  startToCloseTimeout: '24 hours',
  heartbeatTimeout: '8 seconds',
  retry: { initialInterval: '1s', maximumInterval: '1 minute', maximumAttempts: 20 },
  cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
};

/** Monitoring checks: a check must answer quickly. */
export const checkActivity: ActivityOptions = {
  startToCloseTimeout: '2 minutes',
  retry: { maximumAttempts: 3 },
};

/** Undos: no attempt limit. */
export const undoActivity: ActivityOptions = {
  startToCloseTimeout: '10 minutes',
  heartbeatTimeout: '1 minute',
  retry: { initialInterval: '1s', maximumInterval: '1 minute' },
};

/**
 * For an activity that waits on something with its own timeout (a hook command, a command
 * router): that timeout plus a minute for the activity around it, never less than `floor`.
 * Heartbeats (every second while it waits) let Temporal notice a dead worker long before.
 */
export function boundedBy(base: ActivityOptions, timeoutMs: number, floorMs = 5 * 60_000) {
  return {
    ...base,
    startToCloseTimeout: Math.max(timeoutMs + 60_000, floorMs),
    heartbeatTimeout: '30 seconds',
  } satisfies ActivityOptions;
}
