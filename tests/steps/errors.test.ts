import { ApplicationFailure } from '@temporalio/common';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectionUrl, openClient } from '../../src/db/connect';
import { UserError } from '../../src/errors';
import { PlanError } from '../../src/plan';
import { activity, toActivityFailure } from '../../src/temporal/activity';
import { createTestDatabase, type TestDatabase } from '../support/db';

/** The activity kit's error mapping, with errors raised by a real PostgreSQL server. */
let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase('errmap');
  await db.pool.query('CREATE TABLE t (id int PRIMARY KEY, n int CHECK (n >= 0))');
  await db.pool.query('INSERT INTO t VALUES (1, 1)');
});
afterAll(async () => {
  await db?.drop();
});

async function pgError(sql: string, setup?: (c: pg.PoolClient) => Promise<void>) {
  const c = await db.pool.connect();
  try {
    await setup?.(c);
    await c.query(sql);
  } catch (err) {
    return err;
  } finally {
    await c.query('ROLLBACK').catch(() => {});
    c.release();
  }
  throw new Error(`no error from ${sql}`);
}

const nonRetryable = (err: unknown) => {
  const f = toActivityFailure(err);
  return f instanceof ApplicationFailure && f.nonRetryable;
};

describe('activity error mapping', () => {
  it('data errors (class 22) and integrity violations (class 23) are not retried', async () => {
    for (const sql of [
      'SELECT 1 / 0', // 22012
      "SELECT 'x'::int", // 22P02
      'INSERT INTO t VALUES (1, 2)', // 23505
      'INSERT INTO t VALUES (2, -1)', // 23514
    ]) {
      const err = await pgError(sql);
      expect(nonRetryable(err), sql).toBe(true);
      expect((toActivityFailure(err) as ApplicationFailure).type).toBe('PostgresDataError');
    }
  });

  it('a DROP that other objects depend on (class 2B) is not retried', async () => {
    const err = await pgError('DROP TABLE t', async (c) => {
      await c.query('BEGIN');
      await c.query('CREATE VIEW t_view AS SELECT * FROM t');
    });
    expect((err as { code?: string }).code).toBe('2BP01');
    expect(nonRetryable(err)).toBe(true);
    const f = toActivityFailure(err) as ApplicationFailure;
    expect(f.type).toBe('PostgresDependencyError');
    expect(f.message).toMatch(/other objects depend on it/);
  });

  it('lock timeout, serialization failure and a terminated backend stay retryable', async () => {
    const holder = await db.pool.connect();
    try {
      await holder.query('BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE');
      const lock = await pgError('SELECT * FROM t', async (c) => {
        await c.query("SET lock_timeout = '50ms'");
      });
      expect((lock as { code: string }).code).toBe('55P03');
      expect(nonRetryable(lock)).toBe(false);
      expect(toActivityFailure(lock)).toBe(lock);
    } finally {
      await holder.query('ROLLBACK');
      holder.release();
    }
    const victim = await openClient(db.url, 'cutover-errmap-victim');
    const pid = (await victim.query('SELECT pg_backend_pid() AS p')).rows[0].p;
    await db.pool.query('SELECT pg_terminate_backend($1)', [pid]);
    const terminated = await victim.query('SELECT 1').catch((e: unknown) => e);
    await victim.end().catch(() => {});
    expect(nonRetryable(terminated)).toBe(false);
    expect(nonRetryable(Object.assign(new Error('could not serialize'), { code: '40001' }))).toBe(
      false,
    );
    expect(nonRetryable(Object.assign(new Error('deadlock detected'), { code: '40P01' }))).toBe(
      false,
    );
  });

  it('a UserError or plan error is not retried, unless a lost connection caused it', async () => {
    expect(nonRetryable(new UserError('bad input'))).toBe(true);
    expect(nonRetryable(new PlanError('p.yaml', [{ path: 'x', message: 'y' }]))).toBe(true);
    // Cannot connect (refused): wrapped in a UserError by openClient, still worth retrying.
    const refused = await openClient('postgres://u@127.0.0.1:9/none').catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(UserError);
    expect(nonRetryable(refused)).toBe(false);
    // A connection that is not configured will not appear by retrying.
    const missing = (() => {
      try {
        return connectionUrl('no_such_connection', {});
      } catch (e) {
        return e;
      }
    })();
    expect(nonRetryable(missing)).toBe(true);
  });

  it('activity() applies the mapping to what the function throws', async () => {
    const wrapped = activity(async () => {
      throw new UserError('no');
    });
    const err = await wrapped().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect((err as ApplicationFailure).nonRetryable).toBe(true);
    expect((err as ApplicationFailure).type).toBe('UserError');
  });
});
