/**
 * Step kind `rename`: the functions its activities call, over src/swap/rename.ts. Preparation,
 * foreign-key validation and cleanup are the swap's activities with `mode: 'rename'` in their
 * input (src/steps/swap/swap.ts); the sync SQL comes from the sync step's generator with the
 * names as they are after the rename.
 */
import type { SwapAttempt, SwapBackAttempt } from '../../swap/swap';
import { serverVersionOf } from '../../db/connect';
import { attemptRename, attemptRenameBack, renamedChange } from '../../swap/rename';
import {
  connect,
  dropTriggerSql,
  dropTruncateGuardSql,
  syncSql,
  type SwapInput,
  type SwapOptions,
} from '../swap/swap';

/** One attempt: renamed, or told who is in the way (nothing changed then). */
export async function renameAttempt(
  input: SwapInput,
  options: SwapOptions = {},
): Promise<SwapAttempt> {
  const { change, archive } = input;
  const reverse = change.down !== undefined;
  return connect(input, options, 'cutover-rename', async (c) => {
    const { major } = await serverVersionOf(c);
    return attemptRename(c, {
      change,
      archive,
      lockTimeoutMs: input.lockTimeoutMs,
      // Without a reverse sync nothing syncs after the rename: the TRUNCATE guard goes as well.
      stopForwardSync: [
        ...dropTriggerSql(change, 'forward'),
        ...(reverse ? [] : dropTruncateGuardSql(change)),
      ],
      startReverseSync: reverse ? syncSql(renamedChange(change, archive), 'reverse', major) : [],
    });
  });
}

/** One attempt at the rename-back (the rename's undo); done at once when there is nothing to undo. */
export async function renameBackAttempt(
  input: SwapInput,
  options: SwapOptions = {},
): Promise<SwapBackAttempt> {
  const { change, archive } = input;
  return connect(input, options, 'cutover-rename', async (c) => {
    const { major } = await serverVersionOf(c);
    return attemptRenameBack(c, {
      change,
      archive,
      lockTimeoutMs: input.lockTimeoutMs,
      restoreSync: [
        ...syncSql(change, 'forward', major),
        ...(input.directions === 'both' ? syncSql(change, 'reverse', major) : []),
      ],
    });
  });
}
