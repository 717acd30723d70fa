/**
 * Step kind `swap`: thin Temporal adapters over src/swap. The sync triggers' SQL comes from the
 * trigger generator (sync-triggers.ts) with the table names as they are after the renames, so the
 * trigger bodies are the same ones the sync step installs.
 */
import { ApplicationFailure } from '@temporalio/common';
import type { ClientBase } from 'pg';
import { quoteIdent, quoteQualified } from '../src/db/ident';
import { whileHeartbeating, withClient } from '../src/plan/activity-support';
import { UserError } from '../src/errors';
import type { ResolvedChange } from '../src/plan/types';
import { syncNames } from '../src/backfill/names';
import { dropArchive, finishSwap, prepareNewTable } from '../src/swap/finish';
import {
  attemptSwap,
  attemptSwapBack,
  validateForeignKeys,
  type SwapAttempt,
  type SwapBackAttempt,
} from '../src/swap/swap';
import { buildSyncSql } from './sync-triggers';

export interface SwapInput {
  change: ResolvedChange;
  /** The old table's name after the swap (unique per run, chosen by the workflow). */
  archive: string;
  lockTimeoutMs: number;
  /** Which sync directions ran before the swap (what a swap-back restores). */
  directions: 'forward' | 'both';
  /** Test hook: use this client instead of the named connection. */
  client?: ClientBase;
}

/** The change as it looks after the renames: old = archive, new = original name. */
export function swappedChange(change: ResolvedChange, archive: string): ResolvedChange {
  return {
    ...change,
    source: { schema: change.source.schema, table: archive },
    target: { schema: change.source.schema, table: change.source.table },
  };
}

function dropTriggerSql(change: ResolvedChange, which: 'forward' | 'reverse'): string[] {
  const n = syncNames(change);
  const [table, trigger, fn] =
    which === 'forward'
      ? [change.source, n.forwardTrigger, n.forwardFunction]
      : [change.target, n.reverseTrigger, n.reverseFunction];
  return [
    `DROP TRIGGER IF EXISTS ${quoteIdent(trigger)} ON ${quoteQualified(table.schema, table.table)}`,
    `DROP FUNCTION IF EXISTS ${quoteQualified(table.schema, fn)}()`,
  ];
}

const syncSql = (change: ResolvedChange, d: 'forward' | 'reverse') => {
  const s = buildSyncSql(change, d);
  return [s.createFunction, s.createTrigger];
};

/** Turns states a retry cannot change into a non-retryable failure with the cause. */
async function nonRetryableUserErrors<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    if (err instanceof UserError) throw ApplicationFailure.nonRetryable(err.message, 'SwapRefused');
    throw err;
  }
}

/** Before the swap: the old table's outgoing foreign keys (NOT VALID) and sequences on the new one. */
export async function swapPrepare(input: SwapInput) {
  const { change } = input;
  return withClient(change.connection, input.client, 'cutover-swap', (c) =>
    prepareNewTable(c, change.source, change.target, { lockTimeoutMs: input.lockTimeoutMs }),
  );
}

/** One attempt: swapped, or told who is in the way (nothing changed then). */
export async function swapAttempt(input: SwapInput): Promise<SwapAttempt> {
  const { change, archive } = input;
  return nonRetryableUserErrors(() =>
    withClient(change.connection, input.client, 'cutover-swap', (c) =>
      attemptSwap(c, {
        migration: change.name,
        original: change.source,
        shadow: change.target,
        archive,
        lockTimeoutMs: input.lockTimeoutMs,
        stopForwardSync: dropTriggerSql(change, 'forward'),
        startReverseSync: change.down ? syncSql(swappedChange(change, archive), 'reverse') : [],
      }),
    ),
  );
}

/** One attempt at the swap-back (the swap's undo); done at once when there is nothing to undo. */
export async function swapBackAttempt(input: SwapInput): Promise<SwapBackAttempt> {
  const { change, archive } = input;
  return nonRetryableUserErrors(() =>
    withClient(change.connection, input.client, 'cutover-swap', (c) =>
      attemptSwapBack(c, {
        migration: change.name,
        original: change.source,
        shadow: change.target,
        archive,
        lockTimeoutMs: input.lockTimeoutMs,
        restoreSync: [
          ...syncSql(change, 'forward'),
          ...(input.directions === 'both' ? syncSql(change, 'reverse') : []),
        ],
      }),
    ),
  );
}

/** VALIDATE the foreign keys added NOT VALID by the swap or the swap-back (writes go on). */
export async function swapValidateKeys(input: SwapInput): Promise<string[]> {
  const { change } = input;
  // VALIDATE scans the child table: heartbeat so a long one does not look like a dead worker.
  return withClient(change.connection, input.client, 'cutover-swap', (c) =>
    whileHeartbeating({ validating: 'foreign keys' }, () =>
      validateForeignKeys(c, change.source, input.lockTimeoutMs),
    ),
  );
}

/** Cleanup after a swap (the point of no return): the reverse sync and the view go. */
export async function swapFinish(input: SwapInput): Promise<{ archive: string } | undefined> {
  const { change, archive } = input;
  return withClient(change.connection, input.client, 'cutover-cleanup', async (c) => {
    const r = await finishSwap(
      c,
      change.name,
      dropTriggerSql(swappedChange(change, archive), 'reverse'),
      { lockTimeoutMs: input.lockTimeoutMs },
    );
    return r ? { archive: `${r.schema}.${r.archive}` } : undefined;
  });
}

export async function swapDropArchive(input: SwapInput): Promise<string | undefined> {
  return withClient(input.change.connection, input.client, 'cutover-cleanup', (c) =>
    dropArchive(c, input.change.name, { lockTimeoutMs: input.lockTimeoutMs }),
  );
}

export const swapActivities = {
  swapPrepare,
  swapAttempt,
  swapBackAttempt,
  swapValidateKeys,
  swapFinish,
  swapDropArchive,
};
