import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type pg from 'pg';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Lets the writes of one benchmark phase finish before the next is measured: a checkpoint, the
 * kernel's write-back of it, and no autovacuum worker left. An unthrottled copy (or a seed) leaves
 * gigabytes of dirty pages and WAL whose write-back otherwise lands in the next phase (measured:
 * TPC-B at 0.67× of alone during a budget phase whose governor saw no slowdown; "alone" falling
 * from 1,363 to 929 tps over three repetitions of the whole-run benchmark).
 */
export async function settle(db: pg.ClientBase): Promise<void> {
  await db.query('CHECKPOINT');
  await promisify(execFile)('sync', []);
  for (let i = 0; i < 120; i++) {
    const r = await db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'`,
    );
    if (!r.rows[0]!.n) break;
    await sleep(500);
  }
  await sleep(2000);
}
