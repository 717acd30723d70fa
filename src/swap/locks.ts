/**
 * How the swap (and the swap-back) take their locks without ever making an application
 * transaction the victim of a deadlock, and without starving under the two ways applications
 * take the tables in turn:
 *
 * - parent, then child (TPC-B: UPDATE pgbench_accounts … INSERT INTO pgbench_history, whose
 *   foreign key reads the accounts row): locking a child first and then queueing for the parent
 *   closes a cycle with every such transaction in flight;
 * - child only (INSERT INTO item_notes: ROW EXCLUSIVE on the child, then the foreign key check's
 *   FOR KEY SHARE, i.e. ROW SHARE, on the parent): holding the parent in ACCESS EXCLUSIVE and
 *   then queueing for the child closes a cycle with every child insert that began while the
 *   swap waited for the parent.
 *
 * No single order of ACCESS EXCLUSIVE requests avoids both. The first strategy below does, by
 * taking the parents in SHARE ROW EXCLUSIVE first: that mode blocks every write of a parent (so
 * no parent-then-child transaction starts, and those in flight finish: nothing of theirs is
 * held), but not the ROW SHARE of a child's foreign key check, so child-only writers in flight
 * finish too. Then the children are taken in ACCESS EXCLUSIVE (their writers in flight drain;
 * new ones queue holding nothing), then the parents are upgraded to ACCESS EXCLUSIVE (only
 * readers can still be in the way). Its weak spot is a transaction that reads a parent and then
 * writes a child or the parent itself (SELECT … FOR UPDATE, then UPDATE): a plain read slips past
 * SHARE ROW EXCLUSIVE and then waits for the swap. The second strategy, the classic one (parents
 * then children, all ACCESS EXCLUSIVE), drains exactly those; successive tries alternate.
 *
 * Safety does not depend on the strategy: all of one try's waits together stay within half the
 * server's deadlock_timeout. An application transaction in a cycle with the swap began waiting
 * for it after the try began, so its deadlock check (the one that chooses the victim: the
 * session that runs it) can only fire after the try has already given up, releasing what it
 * held (ROLLBACK TO SAVEPOINT). Between tries the swap holds nothing; the pause is jittered.
 */
import type { ClientBase } from 'pg';
import { isLockTimeout } from '../db/lock-timeout';

export type LockStrategy = 'shared-parents-first' | 'parents-first';

export interface SwapLockSet {
  /**
   * The relations the swap renames or replaces (old and new table, a bridge view), quoted and
   * qualified, in the order a write through them takes them (a view before its table).
   */
  parents: string[];
  /** Tables whose foreign keys point at a parent (re-pointed by the swap: ACCESS EXCLUSIVE). */
  children: string[];
}

export interface SwapLockOptions {
  /** The step's lockTimeoutMs: one try waits at most this, capped at deadlock_timeout / 2. */
  lockTimeoutMs: number;
  /** Tries in this call before giving up (the caller then reports a lock timeout). */
  maxTries?: number;
  /** Pause between tries, in ms: base + up to the same again of jitter. */
  pauseMs?: number;
}

export interface SwapLockTry {
  strategy: LockStrategy;
  /** What the try was waiting for when it gave up, e.g. `public.t IN SHARE ROW EXCLUSIVE MODE`. */
  failedAt?: string;
  ms: number;
}

export interface SwapLockResult {
  tries: SwapLockTry[];
  /** The bound of one try (ms), after the deadlock_timeout cap. */
  tryBudgetMs: number;
}

/** A lock wait that ran out (55P03), with the tries made: the caller reports and retries later. */
export class SwapLockTimeout extends Error {
  readonly code = '55P03';
  constructor(readonly result: SwapLockResult) {
    super(
      `locks not granted in ${result.tries.length} tries of at most ${result.tryBudgetMs} ms (last: ${result.tries.at(-1)?.failedAt ?? '?'})`,
    );
  }
}

/** deadlock_timeout of the server (for this session), in ms. */
export async function deadlockTimeoutMs(client: ClientBase): Promise<number> {
  const { rows } = await client.query<{ ms: number }>(
    `SELECT (extract(epoch FROM current_setting('deadlock_timeout')::interval) * 1000)::float8 AS ms`,
  );
  return rows[0]!.ms;
}

/** One try's bound: the step's lock_timeout, at most half of deadlock_timeout, at least 10 ms. */
export async function tryBudgetMs(client: ClientBase, lockTimeoutMs: number): Promise<number> {
  return Math.max(10, Math.min(lockTimeoutMs, Math.floor((await deadlockTimeoutMs(client)) / 2)));
}

function plan(set: SwapLockSet, strategy: LockStrategy): Array<[string, string]> {
  const AE = 'ACCESS EXCLUSIVE';
  const parents = [...new Set(set.parents)];
  const children = [...new Set(set.children)].filter((c) => !parents.includes(c));
  if (strategy === 'parents-first' || children.length === 0)
    return [...parents, ...children].map((t) => [t, AE]);
  return [
    ...parents.map((t): [string, string] => [t, 'SHARE ROW EXCLUSIVE']),
    ...children.map((t): [string, string] => [t, AE]),
    ...parents.map((t): [string, string] => [t, AE]),
  ];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Takes ACCESS EXCLUSIVE on every relation of `set`, inside the caller's open transaction, in
 * tries bounded as described in the file comment. Afterwards lock_timeout stays at the try bound
 * for the rest of the transaction (a later statement that has to wait gives up just as soon).
 * Throws SwapLockTimeout (code 55P03) when no try succeeded; the transaction then holds none of
 * the locks and can be rolled back.
 */
export async function lockForSwap(
  client: ClientBase,
  set: SwapLockSet,
  options: SwapLockOptions,
): Promise<SwapLockResult> {
  const budget = await tryBudgetMs(client, options.lockTimeoutMs);
  const maxTries = options.maxTries ?? 6;
  const pause = options.pauseMs ?? 10;
  const result: SwapLockResult = { tries: [], tryBudgetMs: budget };
  for (let n = 0; n < maxTries; n++) {
    const strategy: LockStrategy = n % 2 === 0 ? 'shared-parents-first' : 'parents-first';
    const start = Date.now();
    const t: SwapLockTry = { strategy, ms: 0 };
    result.tries.push(t);
    await client.query('SAVEPOINT cutover_locks');
    try {
      for (const [rel, mode] of plan(set, strategy)) {
        const left = budget - (Date.now() - start);
        t.failedAt = `${rel} IN ${mode} MODE`;
        if (left < 1) throw Object.assign(new Error('try budget spent'), { code: '55P03' });
        await client.query(`SELECT set_config('lock_timeout', $1, true)`, [`${left}ms`]);
        await client.query(`LOCK TABLE ${rel} IN ${mode} MODE`);
      }
      delete t.failedAt;
      t.ms = Date.now() - start;
      await client.query('RELEASE SAVEPOINT cutover_locks');
      await client.query(`SELECT set_config('lock_timeout', $1, true)`, [`${budget}ms`]);
      return result;
    } catch (err) {
      t.ms = Date.now() - start;
      // Releases every lock this try took: nothing is held during the pause.
      await client.query('ROLLBACK TO SAVEPOINT cutover_locks');
      if (!isLockTimeout(err)) throw err;
    }
    if (n + 1 < maxTries) await sleep(pause * (1 + n) + Math.random() * pause * (1 + n));
  }
  throw new SwapLockTimeout(result);
}
