/**
 * Step kind `swap`: the functions its activities call (activities/registry.ts wraps each in the
 * activity kit), over the cut-over library in src/swap. The sync triggers' SQL comes from the
 * sync step's generator (../sync/triggers.ts) with the table names as they are after the
 * renames, so the trigger bodies are the same ones the sync step installs.
 *
 * A state a retry cannot change (a refused swap, a swap-back that would lose writes) is a
 * UserError, which the activity kit turns into a non-retryable failure.
 */
import type { ClientBase } from 'pg';
import { quoteIdent, quoteQualified } from '../../db/ident';
import type { ResolvedChange } from '../../plan/types';
import { dropArchive, finishSwap, prepareNewTable } from '../../swap/finish';
import {
  attemptSwap,
  attemptSwapBack,
  renamedChange,
  swappedChange,
  validateForeignKeys,
  type SwapAttempt,
  type SwapBackAttempt,
} from '../../swap/swap';
import { whileHeartbeating, withConnection } from '../../temporal/activity';
import { syncNames } from '../sync/names';
import { buildSyncSql, buildTruncateGuardSql, replaceTriggerSql } from '../sync/triggers';
import { serverVersionOf } from '../../db/connect';

export { swappedChange };

/** The change under the names after this input's swap or rename. */
export const afterChange = (input: SwapInput): ResolvedChange =>
  input.mode === 'rename'
    ? renamedChange(input.change, input.archive)
    : swappedChange(input.change, input.archive);

export interface SwapInput {
  change: ResolvedChange;
  /** The old table's name after the swap (unique per run, chosen by the workflow). */
  archive: string;
  lockTimeoutMs: number;
  /** Which sync directions ran before the swap (what a swap-back restores). */
  directions: 'forward' | 'both';
  /** 'rename': the plan finished with a rename step (../rename), not a swap. Default 'swap'. */
  mode?: 'swap' | 'rename';
}

/** Library use and tests: run on this client instead of opening the named connection. */
export interface SwapOptions {
  client?: ClientBase;
}

export const connect = <T>(
  input: SwapInput,
  options: SwapOptions,
  appName: string,
  work: (c: ClientBase) => Promise<T>,
) => withConnection({ connection: input.change.connection, client: options.client }, appName, work);

export function dropTriggerSql(change: ResolvedChange, which: 'forward' | 'reverse'): string[] {
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

/** The TRUNCATE guard on both tables and its function (installed with the forward sync). */
export function dropTruncateGuardSql(change: ResolvedChange): string[] {
  const t = buildTruncateGuardSql(change);
  return [...t.dropTriggers, t.dropFunction];
}

/** Runs inside the swap's transaction, after the renames locked both tables. */
export const syncSql = (change: ResolvedChange, d: 'forward' | 'reverse', major: number) => {
  // After the swap nothing copies in bulk any more: no copy mode.
  const s = buildSyncSql(change, d, { copying: false });
  return [s.createFunction, ...replaceTriggerSql(s.createTrigger, s.dropTrigger, major)];
};

/** Before the swap: the old table's outgoing foreign keys (NOT VALID) and sequences on the new one. */
export async function swapPrepare(input: SwapInput, options: SwapOptions = {}) {
  const { change } = input;
  return connect(input, options, 'cutover-swap', (c) =>
    prepareNewTable(c, change.source, change.target, { lockTimeoutMs: input.lockTimeoutMs }),
  );
}

/** One attempt: swapped, or told who is in the way (nothing changed then). */
export async function swapAttempt(
  input: SwapInput,
  options: SwapOptions = {},
): Promise<SwapAttempt> {
  const { change, archive } = input;
  const reverse = change.down !== undefined;
  return connect(input, options, 'cutover-swap', async (c) => {
    const { major } = await serverVersionOf(c);
    return attemptSwap(c, {
      migration: change.name,
      change,
      original: change.source,
      shadow: change.target,
      archive,
      lockTimeoutMs: input.lockTimeoutMs,
      // Without a reverse sync nothing syncs after the swap: the TRUNCATE guard goes as well.
      stopForwardSync: [
        ...dropTriggerSql(change, 'forward'),
        ...(reverse ? [] : dropTruncateGuardSql(change)),
      ],
      startReverseSync: reverse ? syncSql(swappedChange(change, archive), 'reverse', major) : [],
    });
  });
}

/** One attempt at the swap-back (the swap's undo); done at once when there is nothing to undo. */
export async function swapBackAttempt(
  input: SwapInput,
  options: SwapOptions = {},
): Promise<SwapBackAttempt> {
  const { change, archive } = input;
  return connect(input, options, 'cutover-swap', async (c) => {
    const { major } = await serverVersionOf(c);
    return attemptSwapBack(c, {
      migration: change.name,
      original: change.source,
      shadow: change.target,
      archive,
      lockTimeoutMs: input.lockTimeoutMs,
      swapped: swappedChange(change, archive),
      restoreSync: [
        ...syncSql(change, 'forward', major),
        ...(input.directions === 'both' ? syncSql(change, 'reverse', major) : []),
      ],
    });
  });
}

/** VALIDATE the foreign keys added NOT VALID by the swap or the swap-back (writes go on). */
export async function swapValidateKeys(
  input: SwapInput,
  options: SwapOptions = {},
): Promise<string[]> {
  const { change } = input;
  // VALIDATE scans the child table: heartbeat so a long one does not look like a dead worker.
  return connect(input, options, 'cutover-swap', (c) =>
    whileHeartbeating({ validating: 'foreign keys' }, () =>
      // After a rename the re-pointed keys reference the new table under its own name.
      validateForeignKeys(
        c,
        input.mode === 'rename' ? change.target : change.source,
        input.lockTimeoutMs,
      ),
    ),
  );
}

/** Cleanup after a swap or rename (the point of no return): the rest of the sync and the view go. */
export async function swapFinish(
  input: SwapInput,
  options: SwapOptions = {},
): Promise<{ archive: string } | undefined> {
  const { change } = input;
  const swapped = afterChange(input);
  return connect(input, options, 'cutover-cleanup', async (c) => {
    const r = await finishSwap(
      c,
      {
        migration: change.name,
        swapped,
        dropSync: [...dropTriggerSql(swapped, 'reverse'), ...dropTruncateGuardSql(swapped)],
      },
      { lockTimeoutMs: input.lockTimeoutMs },
    );
    return r ? { archive: `${r.schema}.${r.archive}` } : undefined;
  });
}

/** Drops the archive of a finished swap (after the retention period). Idempotent. */
export async function swapDropArchive(
  input: SwapInput,
  options: SwapOptions = {},
): Promise<string | undefined> {
  return connect(input, options, 'cutover-cleanup', (c) =>
    dropArchive(c, input.change.name, { lockTimeoutMs: input.lockTimeoutMs }),
  );
}
