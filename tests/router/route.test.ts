import { writeFileSync, readFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { routeSet, routeUndo, routeValidate } from '../../src/steps/route/route';
import { createRouter, getRoute, type Router } from '../../src/router';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { deadUrl, startServer, waitFor, type LocalServer } from './helpers';

let db: TestDatabase;
const connection = 'routetest';
const routers: Router[] = [];

beforeAll(async () => {
  db = await createTestDatabase('route');
  process.env.CUTOVER_DB_ROUTETEST_URL = db.url;
});
afterAll(async () => {
  await Promise.all(routers.map((r) => r.close()));
  await db.drop();
});

function follow(opts: Partial<Parameters<typeof createRouter>[0]> & { migration: string }) {
  const r = createRouter({ connectionString: db.url, ...opts });
  routers.push(r);
  return r;
}

async function ledger(migration: string) {
  return getRoute(db.pool, migration);
}

async function killListener(appName = 'cutover-router-listen'): Promise<number> {
  const res = await db.pool.query(
    `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
     WHERE application_name = $1 AND datname = current_database()`,
    [appName],
  );
  return res.rowCount ?? 0;
}

describe('postgres router activities', () => {
  it('validates without writing anything', async () => {
    await expect(routeValidate({ connection, migration: 'fresh' })).resolves.toEqual({
      currentPercent: 0,
      routeExists: false,
    });
    const t = await db.pool.query(`SELECT to_regclass('cutover.routes') AS t`);
    expect(t.rows[0].t).toBeNull();
  });

  it('rejects bad input with a clear message and changes nothing', async () => {
    await expect(routeSet({ connection, migration: 'x; drop', percent: 10 })).rejects.toThrow(
      /plain identifier/,
    );
    await expect(routeSet({ connection, migration: 'm_bad', percent: 101 })).rejects.toThrow(
      /0 to 100/,
    );
    await expect(routeSet({ connection, migration: 'm_bad', percent: 2.5 })).rejects.toThrow(
      /integer/,
    );
    await expect(
      routeSet({
        connection,
        migration: 'm_bad',
        percent: 10,
        router: { kind: 'webhook', url: 'ftp://x' } as never,
      }),
    ).rejects.toThrow(/router.url: must be an http/);
    await expect(
      routeValidate({
        connection,
        migration: 'm_bad',
        router: {
          kind: 'webhook',
          url: 'http://lb/',
          headersFromEnv: { auth: 'NO_SUCH_LB_TOKEN' },
        },
      }),
    ).rejects.toThrow(/NO_SUCH_LB_TOKEN, which is not set/);
    expect(await ledger('m_bad')).toBeUndefined();
  });

  it('sets the route, reports the previous percent, and undo goes back to 0 idempotently', async () => {
    const a = await routeSet({ connection, migration: 'users_v2', percent: 10 });
    expect(a).toMatchObject({ previous: 0, percent: 10, version: 1, changed: true });
    const b = await routeSet({ connection, migration: 'users_v2', percent: 50 });
    expect(b).toMatchObject({ previous: 10, percent: 50, version: 2, changed: true });
    const same = await routeSet({ connection, migration: 'users_v2', percent: 50 });
    expect(same).toMatchObject({ previous: 50, percent: 50, version: 2, changed: false });

    const u1 = await routeUndo({ connection, migration: 'users_v2' });
    expect(u1).toMatchObject({ previous: 50, percent: 0, changed: true });
    const u2 = await routeUndo({ connection, migration: 'users_v2' });
    expect(u2).toMatchObject({ previous: 0, percent: 0, changed: false });
    expect((await ledger('users_v2'))?.percent).toBe(0);

    // Nothing was ever routed: undo has nothing to do and creates no row.
    await expect(routeUndo({ connection, migration: 'never_set' })).resolves.toMatchObject({
      skipped: true,
    });
    expect(await ledger('never_set')).toBeUndefined();
    await expect(routeValidate({ connection, migration: 'users_v2' })).resolves.toEqual({
      currentPercent: 0,
      routeExists: true,
    });
  });
});

describe('createRouter', () => {
  it('reads the initial route and sees a change at once via NOTIFY', async () => {
    await routeSet({ connection, migration: 'notify_m', percent: 10 });
    const r = follow({
      migration: 'notify_m',
      // Polls so rare that only a notification can explain a quick update.
      pollIntervalMs: 600_000,
      refreshIntervalMs: 600_000,
    });
    const changes: number[] = [];
    r.on('change', (e) => changes.push(e.percent));
    await r.ready();
    expect(r.percent).toBe(10);
    expect(r.mode).toBe('listen');

    await routeSet({ connection, migration: 'notify_m', percent: 30 });
    await waitFor(() => r.percent === 30, 'percent 30 via NOTIFY', 5000);
    // Another migration's change is not ours.
    await routeSet({ connection, migration: 'other_m', percent: 90 });
    await routeSet({ connection, migration: 'notify_m', percent: 100 });
    await waitFor(() => r.percent === 100, 'percent 100 via NOTIFY', 5000);
    // The first read counts as a change from the assumed 0 (everything old before ready()).
    expect(changes).toEqual([10, 30, 100]);
    expect(r.target('anyone')).toBe('new');
    await r.close();
  });

  it('starts at 0 (everything old) when no route exists yet, even before the table exists', async () => {
    const other = await createTestDatabase('route_empty');
    try {
      const r = createRouter({ connectionString: other.url, migration: 'nothing' });
      await r.ready();
      expect(r.percent).toBe(0);
      expect(r.target('k')).toBe('old');
      await r.close();
    } finally {
      await other.drop();
    }
  });

  it('falls back to polling when the LISTEN connection is killed', async () => {
    await routeSet({ connection, migration: 'poll_m', percent: 0 });
    const r = follow({
      migration: 'poll_m',
      applicationName: 'poll-test',
      pollIntervalMs: 100,
      refreshIntervalMs: 600_000,
      reconnectDelayMs: 600_000,
    });
    await r.ready();
    expect(r.mode).toBe('listen');
    expect(await killListener('poll-test-listen')).toBe(1);
    await waitFor(() => r.mode === 'poll', 'poll mode');

    await routeSet({ connection, migration: 'poll_m', percent: 70 });
    await waitFor(() => r.percent === 70, 'percent 70 by polling');
    expect(r.mode).toBe('poll');
    await r.close();
  });

  it('reconnects LISTEN after it drops and catches changes made meanwhile', async () => {
    await routeSet({ connection, migration: 'recon_m', percent: 5 });
    const r = follow({
      migration: 'recon_m',
      applicationName: 'recon-test',
      pollIntervalMs: 600_000,
      refreshIntervalMs: 600_000,
      reconnectDelayMs: 300,
    });
    const modes: string[] = [];
    r.on('mode', (m) => modes.push(m));
    await r.ready();
    expect(await killListener('recon-test-listen')).toBe(1);
    await routeSet({ connection, migration: 'recon_m', percent: 40 });
    await waitFor(() => r.percent === 40, 'percent 40 after reconnect');
    await waitFor(() => r.mode === 'listen', 'listen mode again');
    expect(modes).toContain('poll');

    await routeSet({ connection, migration: 'recon_m', percent: 60 });
    await waitFor(() => r.percent === 60, 'percent 60 via NOTIFY after reconnect', 5000);
    await r.close();
  });

  it('works from an application pool and names tables per key', async () => {
    await routeSet({ connection, migration: 'pool_m', percent: 50 });
    const pool = new pg.Pool({ connectionString: db.url, max: 3 });
    const r = createRouter({
      pool,
      migration: 'pool_m',
      tables: { old: 'public.users', new: 'public.users_v2' },
    });
    await r.ready();
    expect(r.mode).toBe('listen');
    const keys = Array.from({ length: 200 }, (_, i) => i);
    const tables = new Set(keys.map((k) => r.table(k)));
    expect(tables).toEqual(new Set(['public.users', 'public.users_v2']));
    for (const k of keys) {
      expect(r.table(k)).toBe(r.target(k) === 'new' ? 'public.users_v2' : 'public.users');
    }
    await routeSet({ connection, migration: 'pool_m', percent: 0 });
    await waitFor(() => r.percent === 0, 'percent 0');
    expect(new Set(keys.map((k) => r.table(k)))).toEqual(new Set(['public.users']));
    await r.close();
    await pool.end();
  });
});

describe('webhook router', () => {
  let server: LocalServer;
  let status = 200;
  beforeAll(async () => {
    server = await startServer((_req, res) => {
      res.statusCode = status;
      res.end(status === 200 ? 'ok' : 'load balancer says no');
    });
  });
  afterAll(() => server.close());

  it('POSTs the change as JSON and records it', async () => {
    process.env.ROUTE_TEST_TOKEN = 's3cret';
    const router = {
      kind: 'webhook' as const,
      url: `${server.url}/route`,
      timeoutMs: 2000,
      headers: { 'x-team': 'db' },
      headersFromEnv: { authorization: 'ROUTE_TEST_TOKEN' },
    };
    const change = await routeSet({ connection, migration: 'hook_m', percent: 25, router });
    expect(change).toMatchObject({ previous: 0, percent: 25, version: 1 });
    const req = server.requests.at(-1)!;
    expect(req.method).toBe('POST');
    expect(req.url).toBe('/route');
    expect(req.headers['content-type']).toBe('application/json');
    expect(req.headers['x-team']).toBe('db');
    expect(req.headers.authorization).toBe('s3cret');
    expect(JSON.parse(req.body)).toEqual({
      migration: 'hook_m',
      percent: 25,
      version: 1,
      swapped: false,
    });

    await routeUndo({ connection, migration: 'hook_m', router });
    expect(JSON.parse(server.requests.at(-1)!.body)).toMatchObject({ percent: 0 });
    // Undo tells the webhook again even when the ledger is already at 0.
    const before = server.requests.length;
    await routeUndo({ connection, migration: 'hook_m', router });
    expect(server.requests.length).toBe(before + 1);
  });

  it('fails on a non-2xx answer and leaves the route unchanged', async () => {
    const router = { kind: 'webhook' as const, url: server.url, timeoutMs: 2000 };
    await routeSet({ connection, migration: 'hook_fail', percent: 10, router });
    status = 503;
    try {
      await expect(
        routeSet({ connection, migration: 'hook_fail', percent: 50, router }),
      ).rejects.toThrow(/answered HTTP 503: load balancer says no/);
    } finally {
      status = 200;
    }
    expect((await ledger('hook_fail'))?.percent).toBe(10);
  });

  it('fails clearly when nothing listens', async () => {
    const router = { kind: 'webhook' as const, url: await deadUrl(), timeoutMs: 2000 };
    await expect(
      routeSet({ connection, migration: 'hook_dead', percent: 10, router }),
    ).rejects.toThrow(/connection refused/);
    expect((await ledger('hook_dead'))?.percent ?? 0).toBe(0);
  });
});

describe('command router', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cutover-route-'));

  it('runs the command with the migration and percent in its environment', async () => {
    const out = join(dir, 'seen');
    const router = {
      kind: 'command' as const,
      command: `echo "$CUTOVER_MIGRATION $CUTOVER_PERCENT $CUTOVER_SWAPPED" > '${out}'`,
      timeoutMs: 5000,
    };
    await routeSet({ connection, migration: 'cmd_m', percent: 35, router });
    expect(readFileSync(out, 'utf8').trim()).toBe('cmd_m 35 false');
    await routeUndo({ connection, migration: 'cmd_m', router });
    expect(readFileSync(out, 'utf8').trim()).toBe('cmd_m 0 false');
    expect((await ledger('cmd_m'))?.percent).toBe(0);
  });

  it('fails on a non-zero exit with the output in the error, route unchanged', async () => {
    const router = {
      kind: 'command' as const,
      command: 'echo applying; echo "haproxy: backend not found" >&2; exit 3',
      timeoutMs: 5000,
    };
    await expect(
      routeSet({ connection, migration: 'cmd_fail', percent: 10, router }),
    ).rejects.toThrow(/exited with code 3[\s\S]*haproxy: backend not found/);
    expect((await ledger('cmd_fail'))?.percent ?? 0).toBe(0);
  });

  it('kills a command that overruns its timeout', async () => {
    const marker = join(dir, 'late');
    writeFileSync(marker, '');
    const router = {
      kind: 'command' as const,
      command: `sleep 30; echo late > '${marker}'`,
      timeoutMs: 300,
    };
    await expect(
      routeSet({ connection, migration: 'cmd_slow', percent: 10, router }),
    ).rejects.toThrow(/timed out after 300 ms/);
    expect((await ledger('cmd_slow'))?.percent ?? 0).toBe(0);
  });
});
