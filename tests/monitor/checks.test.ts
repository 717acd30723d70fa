import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { monitorCheck, monitorChecks, monitorValidate } from '../../src/steps/monitor/monitor';
import { compare, runCheck, type CheckConfig } from '../../src/monitor';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { deadUrl, startServer, type LocalServer } from '../router/helpers';

let db: TestDatabase;
let app: LocalServer;
let prom: LocalServer;
/** What the fake Prometheus answers to the next query, by query text. */
const promAnswers = new Map<string, { status: number; body: unknown }>();

beforeAll(async () => {
  db = await createTestDatabase('monitor');
  process.env.CUTOVER_DB_MONTEST_URL = db.url;
  await db.pool.query('CREATE TABLE errors_log (id int)');
  await db.pool.query('INSERT INTO errors_log SELECT generate_series(1, 7)');

  app = await startServer((req, res) => {
    if (req.url === '/health') {
      res.end('{"status":"ok","db":"up"}');
    } else if (req.url === '/degraded') {
      res.end('{"status":"degraded"}');
    } else if (req.url === '/down') {
      res.statusCode = 503;
      res.end('database unavailable');
    } else if (req.url === '/created') {
      res.statusCode = 204;
      res.end();
    } else if (req.url === '/slow') {
      setTimeout(() => res.end('late'), 3000);
    } else {
      res.statusCode = 404;
      res.end();
    }
  });

  prom = await startServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    const answer =
      url.pathname === '/api/v1/query'
        ? promAnswers.get(url.searchParams.get('query') ?? '')
        : undefined;
    res.statusCode = answer?.status ?? 404;
    res.setHeader('content-type', 'application/json');
    res.end(
      JSON.stringify(
        answer?.body ?? { status: 'error', errorType: 'not_found', error: 'no such query' },
      ),
    );
  });
  promAnswers.set('rate(http_errors_total[5m])', {
    status: 200,
    body: {
      status: 'success',
      data: {
        resultType: 'vector',
        result: [{ metric: { job: 'api' }, value: [1700000000.123, '0.25'] }],
      },
    },
  });
  promAnswers.set('scalar(up)', {
    status: 200,
    body: { status: 'success', data: { resultType: 'scalar', result: [1700000000, '1'] } },
  });
  promAnswers.set('absent_metric', {
    status: 200,
    body: { status: 'success', data: { resultType: 'vector', result: [] } },
  });
  promAnswers.set('bad(', {
    status: 400,
    body: { status: 'error', errorType: 'bad_data', error: 'parse error at char 5' },
  });
});

afterAll(async () => {
  await Promise.all([app.close(), prom.close()]);
  await db.drop();
});

describe('compare', () => {
  it('implements every operator', () => {
    expect([compare(1, '<', 2), compare(2, '<', 2)]).toEqual([true, false]);
    expect([compare(2, '<=', 2), compare(3, '<=', 2)]).toEqual([true, false]);
    expect([compare(3, '>', 2), compare(2, '>', 2)]).toEqual([true, false]);
    expect([compare(2, '>=', 2), compare(1, '>=', 2)]).toEqual([true, false]);
    expect([compare(2, '=', 2), compare(1, '=', 2)]).toEqual([true, false]);
    expect([compare(1, '!=', 2), compare(2, '!=', 2)]).toEqual([true, false]);
  });
});

describe('http check', () => {
  it('passes on the expected status and body', async () => {
    const r = await runCheck({
      kind: 'http',
      url: `${app.url}/health`,
      bodyContains: '"status":"ok"',
      bodyMatches: '"db":\\s*"up"',
    });
    expect(r).toMatchObject({ ok: true, value: 200, kind: 'http', name: `http ${app.url}/health` });
    expect(r.detail).toMatch(/^HTTP 200 in \d+ ms$/);
    expect(new Date(r.at).getTime()).not.toBeNaN();
  });

  it('fails on the wrong status, with the body in the detail', async () => {
    const r = await runCheck({ kind: 'http', name: 'api health', url: `${app.url}/down` });
    expect(r).toMatchObject({ ok: false, value: 503, name: 'api health' });
    expect(r.detail).toBe('HTTP 503, expected 2xx: database unavailable');
  });

  it('honours expectStatus (one or several)', async () => {
    expect(
      (await runCheck({ kind: 'http', url: `${app.url}/created`, expectStatus: 204 })).ok,
    ).toBe(true);
    expect(
      (await runCheck({ kind: 'http', url: `${app.url}/created`, expectStatus: 200 })).ok,
    ).toBe(false);
    expect(
      (await runCheck({ kind: 'http', url: `${app.url}/down`, expectStatus: [200, 503] })).ok,
    ).toBe(true);
  });

  it('fails when the body does not contain or match', async () => {
    const a = await runCheck({ kind: 'http', url: `${app.url}/degraded`, bodyContains: '"ok"' });
    expect(a.ok).toBe(false);
    expect(a.detail).toMatch(/does not contain "\\"ok\\""/);
    const b = await runCheck({
      kind: 'http',
      url: `${app.url}/degraded`,
      bodyMatches: '^\\{"status":"ok',
    });
    expect(b.ok).toBe(false);
    expect(b.detail).toMatch(/does not match/);
  });

  it('is a failed check, not a crash, when the endpoint is down or too slow', async () => {
    const down = await runCheck({ kind: 'http', url: `${await deadUrl()}/health` });
    expect(down).toMatchObject({ ok: false, value: null });
    expect(down.detail).toMatch(/could not run: .*connection refused/);
    const slow = await runCheck({ kind: 'http', url: `${app.url}/slow`, timeoutMs: 200 });
    expect(slow).toMatchObject({ ok: false, value: null });
    expect(slow.detail).toMatch(/no response within 200 ms/);
  });
});

describe('sql check', () => {
  const sql = (
    query: string,
    op: '<' | '<=' | '>' | '>=' | '=' | '!=',
    threshold: number,
    extra = {},
  ) => runCheck({ kind: 'sql', connection: 'montest', query, op, threshold, ...extra });

  it('compares the value with the threshold', async () => {
    const pass = await sql('SELECT count(*) FROM errors_log', '<', 10);
    expect(pass).toMatchObject({ ok: true, value: 7, detail: '7 < 10' });
    const fail = await sql('SELECT count(*) FROM errors_log', '<', 5);
    expect(fail).toMatchObject({ ok: false, value: 7, detail: '7 is not < 5' });
    expect((await sql('SELECT 0.5::numeric', '<=', 0.5)).ok).toBe(true);
    expect((await sql('SELECT 2', '!=', 2)).ok).toBe(false);
    expect((await sql('SELECT 3::bigint', '=', 3)).ok).toBe(true);
  });

  it('fails on answers that are not one number', async () => {
    const many = await sql('SELECT generate_series(1, 3)', '>', 0);
    expect(many).toMatchObject({ ok: false, value: null });
    expect(many.detail).toMatch(/one row with one value, got 3 rows/);
    expect((await sql('SELECT 1, 2', '>', 0)).detail).toMatch(/got 2 columns/);
    expect((await sql('SELECT NULL', '>', 0)).detail).toMatch(/returned null, not a number/);
    expect((await sql(`SELECT 'abc'`, '>', 0)).detail).toMatch(/"abc", not a number/);
    expect((await sql('SELECT nope FROM nowhere', '>', 0)).detail).toMatch(
      /query failed: .*nowhere/,
    );
  });

  it('runs read-only: a write fails the check and changes nothing', async () => {
    const r = await sql(
      'WITH x AS (INSERT INTO errors_log VALUES (100) RETURNING 1) SELECT count(*) FROM x',
      '>=',
      0,
    );
    expect(r.ok).toBe(false);
    expect(r.detail).toMatch(/read-only/);
    const n = await db.pool.query('SELECT count(*)::int AS n FROM errors_log');
    expect(n.rows[0].n).toBe(7);
  });

  it('cancels a query that runs past its timeout', async () => {
    const r = await sql('SELECT 1 FROM pg_sleep(5)', '=', 1, { timeoutMs: 200 });
    expect(r).toMatchObject({ ok: false, value: null });
    expect(r.detail).toMatch(/longer than 200 ms and was cancelled/);
  });

  it('is a failed check when the database cannot be reached or is not configured', async () => {
    const deadPort = new URL(await deadUrl()).port;
    const u = new URL(db.url);
    u.port = deadPort;
    process.env.CUTOVER_DB_DEADDB_URL = u.toString();
    const dead = await runCheck({
      kind: 'sql',
      connection: 'deaddb',
      query: 'SELECT 1',
      op: '=',
      threshold: 1,
    });
    expect(dead.ok).toBe(false);
    expect(dead.detail).toMatch(/cannot connect to database/);
    const missing = await runCheck({
      kind: 'sql',
      connection: 'nosuch',
      query: 'SELECT 1',
      op: '=',
      threshold: 1,
    });
    expect(missing.ok).toBe(false);
    expect(missing.detail).toMatch(/CUTOVER_DB_NOSUCH_URL/);
  });
});

describe('prometheus check', () => {
  const q = (query: string, op: '<' | '>' | '=', threshold: number, url = prom.url) =>
    runCheck({ kind: 'prometheus', url, query, op, threshold, timeoutMs: 2000 });

  it('compares the first vector value or the scalar with the threshold', async () => {
    expect(await q('rate(http_errors_total[5m])', '<', 1)).toMatchObject({
      ok: true,
      value: 0.25,
      detail: '0.25 < 1',
    });
    expect(await q('rate(http_errors_total[5m])', '<', 0.1)).toMatchObject({
      ok: false,
      value: 0.25,
    });
    expect(await q('scalar(up)', '=', 1)).toMatchObject({ ok: true, value: 1 });
    expect(await q('scalar(up)', '=', 0, `${prom.url}/api/v1/query`)).toMatchObject({
      ok: false,
      value: 1,
    });
  });

  it('fails on an empty result, a query error, or a down server', async () => {
    expect((await q('absent_metric', '<', 1)).detail).toMatch(/no series/);
    expect((await q('bad(', '<', 1)).detail).toBe('query failed: bad_data: parse error at char 5');
    const down = await q('scalar(up)', '=', 1, await deadUrl());
    expect(down).toMatchObject({ ok: false, value: null });
    expect(down.detail).toMatch(/connection refused/);
  });
});

describe('monitor activities', () => {
  const good: CheckConfig[] = [
    { kind: 'http', url: 'http://127.0.0.1:1/health' },
    { kind: 'sql', connection: 'montest', query: 'SELECT 1', op: '=', threshold: 1 },
  ];

  it('validates configs with messages that name the field', async () => {
    await expect(monitorValidate(good)).resolves.toEqual({ count: 2 });
    await expect(
      monitorValidate([
        good[0]!,
        { kind: 'sql', query: 'SELECT 1', op: '=>', threshold: 1 } as never,
      ]),
    ).rejects.toThrow(/checks\[1\]: invalid check: op: op must be one of/);
    await expect(
      monitorValidate([
        { kind: 'sql', connection: 'nosuch', query: 'SELECT 1', op: '=', threshold: 1 },
      ]),
    ).rejects.toThrow(/CUTOVER_DB_NOSUCH_URL/);
    await expect(
      monitorValidate([
        {
          kind: 'prometheus',
          url: prom.url,
          query: 'up',
          op: '>',
          threshold: 0,
          headersFromEnv: { authorization: 'NO_SUCH_TOKEN_VAR' },
        },
      ]),
    ).rejects.toThrow(/NO_SUCH_TOKEN_VAR/);
  });

  it('runs a tick of checks and returns their results in order, failures included', async () => {
    const results = await monitorChecks([
      { kind: 'http', url: `${app.url}/health` },
      {
        kind: 'sql',
        connection: 'montest',
        query: 'SELECT count(*) FROM errors_log',
        op: '<',
        threshold: 5,
      },
      { kind: 'prometheus', url: prom.url, query: 'scalar(up)', op: '=', threshold: 1 },
    ]);
    expect(results.map((r) => [r.kind, r.ok])).toEqual([
      ['http', true],
      ['sql', false],
      ['prometheus', true],
    ]);
    const invalid = await monitorCheck({ kind: 'http', url: 'not a url' } as CheckConfig);
    expect(invalid).toMatchObject({ ok: false, value: null });
    expect(invalid.detail).toMatch(/invalid check: url/);
  });
});
