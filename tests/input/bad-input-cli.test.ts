/**
 * Bad input through the real CLI against a real database (issue 13): every case asserts the
 * exact first line of the message, the exit code, that no secret is printed (the connection URL
 * carries the password Sup3rSecretPw, which a trust-auth test server ignores) and that the
 * database, catalog and data, is unchanged.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { catalogSnapshot } from '../support/catalog';
import { runCli, type CliResult } from '../support/cli';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { scratchMigrations } from '../support/migrations-dir';

const SECRET = 'Sup3rSecretPw';
/** Each case runs the CLI a few times; on a loaded machine one run can take a minute. */
const CLI_TIMEOUT = { timeout: 600_000 };
let db: TestDatabase;
let url: string;
let work: string;

const SCHEMA = `
  CREATE TABLE customers (id integer PRIMARY KEY, name text NOT NULL, email text NOT NULL UNIQUE);
  INSERT INTO customers SELECT g, 'Ada Lovelace ' || g, 'c' || g || '@example.com'
    FROM generate_series(1, 50) g;
`;

beforeAll(async () => {
  db = await createTestDatabase('badin');
  await db.pool.query(SCHEMA);
  const u = new URL(db.url);
  u.password = SECRET;
  url = u.toString();
  work = mkdtempSync(join(tmpdir(), 'cutover-badin-'));
});
afterAll(async () => {
  await db?.drop();
  if (work) rmSync(work, { recursive: true, force: true });
});

const env = (extra: Record<string, string | undefined> = {}) => ({
  DATABASE_URL: url,
  CUTOVER_DATABASE_URL: undefined,
  CUTOVER_MIGRATIONS_DIR: undefined,
  ...extra,
});

/** Catalog plus every row of every user table: "unchanged" means all of it is equal. */
async function dbState(): Promise<unknown> {
  const tables = await db.pool.query(
    `SELECT format('%I.%I', schemaname, tablename) AS t FROM pg_tables
      WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1`,
  );
  const data: Record<string, unknown[]> = {};
  for (const { t } of tables.rows as Array<{ t: string }>)
    data[t] = (await db.pool.query(`SELECT * FROM ${t} ORDER BY 1`)).rows;
  return { catalog: await catalogSnapshot(db.pool), data };
}

/** The checks every case shares: exit code, exact first line, no stack, no secret. */
function expectRefused(r: CliResult, code: number, firstLine: string): void {
  expect(r.code, r.stderr).toBe(code);
  expect(r.stderr.split('\n')[0]).toBe(firstLine);
  expect(r.stderr).not.toMatch(/^\s+at /m);
  expect(r.stdout + r.stderr).not.toContain(SECRET);
}

function planFile(name: string, text: string | Buffer): string {
  const file = join(work, name);
  writeFileSync(file, text);
  return file;
}

const goodPlan = readFileSync('plans/split-name.yaml', 'utf8');

describe(
  'one error path: <where>: <what is wrong>: <what to do>, never a secret',
  CLI_TIMEOUT,
  () => {
    it('a connection URL pasted into a plan is refused with its password masked', async () => {
      const before = await dbState();
      const file = planFile(
        'url-connection.yaml',
        goodPlan.replace(
          'source: public.customers',
          `connection: ${url}\nsource: public.customers`,
        ),
      );
      const r = await runCli(['plan', 'check', file], env());
      const masked = new URL(url);
      masked.password = '***';
      expectRefused(
        r,
        1,
        `error: url-connection.yaml: connection: "${masked.toString()}" is not a safe identifier: use letters, digits and _ only (no quotes, semicolons, spaces or dots), start with a letter or _, at most 63 characters`,
      );
      expect(await dbState()).toEqual(before);
    });

    it('a malformed DATABASE_URL names the variable and is not echoed', async () => {
      const r = await runCli(
        ['status'],
        env({ DATABASE_URL: `postgres://u:${SECRET}@host:port/db` }),
      );
      expectRefused(
        r,
        1,
        'error: DATABASE_URL: not a valid PostgreSQL connection URL: write it as postgres://host:5432/dbname with user:password@ before the host, percent-encoding special characters in the password (e.g. @ as %40)',
      );
    });

    it('an unreachable server is named by its URL with the password masked', async () => {
      const bad = new URL(url);
      bad.port = '1';
      const r = await runCli(['status'], env({ DATABASE_URL: bad.toString() }));
      bad.password = '***';
      expect(r.code).toBe(1);
      expect(r.stderr.split('\n')[0]).toMatch(
        new RegExp(
          `^error: cannot connect to PostgreSQL at ${bad.toString().replace(/[.*?]/g, '\\$&')}: `,
        ),
      );
      expect(r.stderr).not.toContain(SECRET);
    });
  },
);

describe('input limits', CLI_TIMEOUT, () => {
  it('a plan file above 1 MiB is refused at once with the limit named', async () => {
    const before = await dbState();
    const big = `${goodPlan}\n# ${'x'.repeat(1024 * 1024)}\n`;
    const file = planFile('huge.yaml', big);
    const r = await runCli(['plan', 'check', file], env());
    expectRefused(
      r,
      1,
      `error: ${file}: plan file is 1 MiB, above the limit of 1 MiB: a plan describes one table change; map columns by name instead of listing them`,
    );
    expect(await dbState()).toEqual(before);
  });

  it('a migration file above 10 MiB is refused before anything runs', async () => {
    const before = await dbState();
    const dir = scratchMigrations({
      '0001_big.up.sql': `SELECT 1;\n-- ${'x'.repeat(10 * 1024 * 1024 + 10)}\n`,
      '0001_big.down.sql': 'SELECT 1;',
    });
    try {
      const r = await runCli(['migrate', '--dir', dir], env());
      expectRefused(
        r,
        1,
        `error: ${join(dir, '0001_big.up.sql')}: migration file is 10 MiB, above the limit of 10 MiB: split it into several migrations, or load bulk data with COPY outside migrations`,
      );
    } finally {
      rmSync(dir, { recursive: true });
    }
    expect(await dbState()).toEqual(before);
  });
});

describe('migration files', CLI_TIMEOUT, () => {
  it('a BOM is stripped before the SQL is sent; CRLF→LF keeps an old raw checksum valid and it is upgraded', async () => {
    const crlf =
      '\ufeffCREATE TABLE bom_t (id bigint PRIMARY KEY);\r\nINSERT INTO bom_t VALUES (1);\r\n';
    const dir = scratchMigrations({
      '0001_bom.up.sql': crlf,
      '0001_bom.down.sql': 'DROP TABLE bom_t;',
    });
    try {
      const up = await runCli(['migrate', '--dir', dir], env());
      expect(up.code, up.stderr).toBe(0);
      expect((await db.pool.query('SELECT id FROM bom_t')).rows).toEqual([{ id: '1' }]);
      // Simulate a history row from before normalization (sha256 of the raw CRLF+BOM text), then
      // the file checked out again with LF endings and no BOM.
      const raw = createHash('sha256').update(crlf, 'utf8').digest('hex');
      await db.pool.query(`UPDATE cutover.schema_migrations SET checksum = $1 WHERE version = 1`, [
        raw,
      ]);
      writeFileSync(
        join(dir, '0001_bom.up.sql'),
        crlf.replace(/^\ufeff/, '').replace(/\r\n/g, '\n'),
      );
      const v = await runCli(['validate', '--dir', dir], env());
      expect(v.code, v.stderr).toBe(0);
      expect(v.stdout).toBe('ok: every applied migration matches its file\n');
      const again = await runCli(['migrate', '--dir', dir], env());
      expect(again.code, again.stderr).toBe(0);
      expect(again.stderr).toContain('0001_bom: history checksum upgraded');
      const normalized = createHash('sha256')
        .update('CREATE TABLE bom_t (id bigint PRIMARY KEY);\nINSERT INTO bom_t VALUES (1);\n')
        .digest('hex');
      const row = await db.pool.query(`SELECT checksum FROM cutover.schema_migrations`);
      expect(row.rows).toEqual([{ checksum: normalized }]);
      // A real edit still fails validation.
      writeFileSync(join(dir, '0001_bom.up.sql'), 'CREATE TABLE bom_t (id int PRIMARY KEY);\n');
      const changed = await runCli(['validate', '--dir', dir], env());
      expectRefused(changed, 1, 'error: validation failed:');
    } finally {
      await db.pool.query('DROP TABLE IF EXISTS bom_t; DROP SCHEMA IF EXISTS cutover CASCADE');
      rmSync(dir, { recursive: true });
    }
  });

  it('a file that looks like a migration but breaks the naming rule is reported, not skipped', async () => {
    const before = await dbState();
    const dir = scratchMigrations({
      '0001_a.up.sql': 'CREATE TABLE named_a (id bigint PRIMARY KEY);',
      '0001_a.down.sql': 'DROP TABLE named_a;',
      '0002_b.up.SQL': 'CREATE TABLE named_b (id bigint PRIMARY KEY);',
    });
    try {
      const r = await runCli(['migrate', '--dir', dir], env());
      expectRefused(r, 1, `error: invalid migrations in ${dir}:`);
      expect(r.stderr.split('\n')[1]).toBe(
        '  0002_b.up.SQL: malformed migration file name (expected NNNN_snake_case_name.up.sql or .down.sql, all lower case, e.g. 0007_add_orders.up.sql): rename it',
      );
    } finally {
      rmSync(dir, { recursive: true });
    }
    expect(await dbState()).toEqual(before);
  });

  it('rollback --steps N with fewer applied says so and rolls back nothing; --all does it', async () => {
    const dir = scratchMigrations({
      '0001_a.up.sql': 'CREATE TABLE steps_a (id bigint PRIMARY KEY);',
      '0001_a.down.sql': 'DROP TABLE steps_a;',
      '0002_b.up.sql': 'CREATE TABLE steps_b (id bigint PRIMARY KEY);',
      '0002_b.down.sql': 'DROP TABLE steps_b;',
    });
    try {
      expect((await runCli(['migrate', '--dir', dir], env())).code).toBe(0);
      const before = await dbState();
      const r = await runCli(['rollback', '--dir', dir, '--steps', '5'], env());
      expectRefused(
        r,
        1,
        'error: rollback: --steps 5 asks for 5 migrations but only 2 are applied; nothing was rolled back: use --steps 2, --all or --to <version>',
      );
      expect(await dbState()).toEqual(before);
      const all = await runCli(['rollback', '--dir', dir, '--all'], env());
      expect(all.code, all.stderr).toBe(0);
      expect(all.stdout).toBe('rolled back 2 migration(s)\n');
    } finally {
      await db.pool.query('DROP SCHEMA IF EXISTS cutover CASCADE');
      rmSync(dir, { recursive: true });
    }
  });

  it('a no-transaction script that fails half-way shows as partial, with the statements that ran', async () => {
    const dir = scratchMigrations({
      '0001_idx.up.sql':
        '-- cutover:no-transaction\nCREATE TABLE part_t (id bigint PRIMARY KEY, v int);\nCREATE INDEX CONCURRENTLY part_t_v ON part_t (v);\nCREATE INDEX CONCURRENTLY part_bad ON part_t (nosuch);\n',
      '0001_idx.down.sql': 'DROP TABLE part_t;',
    });
    try {
      const r = await runCli(['migrate', '--dir', dir], env());
      expect(r.code).toBe(1);
      expect(r.stderr.split('\n').find((l) => l.startsWith('error: '))).toBe(
        'error: 0001_idx.up.sql:4: ERROR: column "nosuch" does not exist',
      );
      expect(r.stdout + r.stderr).not.toContain(SECRET);
      const st = await runCli(['status', '--dir', dir], env());
      expect(st.code, st.stderr).toBe(0);
      expect(st.stdout).toMatch(/0001 +idx +partial \(2\/3 statements\)/);
      expect(st.stdout).toContain(
        '0001_idx: partially applied (no-transaction script stopped after 2 of 3 statements); these ran and stay applied:\n' +
          '  CREATE TABLE part_t (id bigint PRIMARY KEY, v int);\n' +
          '  CREATE INDEX CONCURRENTLY part_t_v ON part_t (v);\n' +
          '  then failed: 0001_idx.up.sql:4: ERROR: column "nosuch" does not exist',
      );
      const json = JSON.parse((await runCli(['status', '--dir', dir, '--json'], env())).stdout);
      expect(json.entries[0]).toMatchObject({
        state: 'partial',
        statementsTotal: 3,
        statementsRun: [
          'CREATE TABLE part_t (id bigint PRIMARY KEY, v int)',
          'CREATE INDEX CONCURRENTLY part_t_v ON part_t (v)',
        ],
      });
      // Fixed and re-runnable: the retry applies it and the partial state is gone.
      writeFileSync(
        join(dir, '0001_idx.up.sql'),
        '-- cutover:no-transaction\nCREATE TABLE IF NOT EXISTS part_t (id bigint PRIMARY KEY, v int);\nCREATE INDEX CONCURRENTLY IF NOT EXISTS part_t_v ON part_t (v);\n',
      );
      expect((await runCli(['migrate', '--dir', dir], env())).code).toBe(0);
      const after = JSON.parse((await runCli(['status', '--dir', dir, '--json'], env())).stdout);
      expect(after.entries[0].state).toBe('applied');
      expect(
        (await db.pool.query('SELECT count(*)::int AS n FROM cutover.migration_progress')).rows,
      ).toEqual([{ n: 0 }]);
    } finally {
      await db.pool.query('DROP TABLE IF EXISTS part_t; DROP SCHEMA IF EXISTS cutover CASCADE');
      rmSync(dir, { recursive: true });
    }
  });
});

describe('plan check refuses what would only fail after the backfill', CLI_TIMEOUT, () => {
  it('a data-modifying CTE in sqlChecks', async () => {
    const before = await dbState();
    const file = planFile(
      'cte.yaml',
      goodPlan.replace(
        "sql: SELECT count(*) FROM customers_v2 WHERE first_name = ''",
        'sql: WITH d AS (DELETE FROM customers RETURNING 1) SELECT count(*) FROM d',
      ),
    );
    const r = await runCli(['plan', 'check', file], env());
    expectRefused(
      r,
      1,
      'error: cte.yaml: verify.sqlChecks[0].sql: contains a data-modifying DELETE (e.g. in a WITH clause): a check must only read; remove it',
    );
    expect(await dbState()).toEqual(before);
  });

  it('row locks and side-effect calls in a monitoring query', async () => {
    const file = planFile(
      'lock.yaml',
      goodPlan.replace(
        "query: SELECT count(*) FROM customers_v2 WHERE first_name = ''",
        "query: SELECT nextval('s') FROM customers_v2 FOR UPDATE",
      ),
    );
    const r = await runCli(['plan', 'check', file], env());
    expectRefused(
      r,
      1,
      'error: lock.yaml: run.monitor.checks[0].query: must not lock rows (FOR UPDATE / FOR SHARE would block the application): remove the locking clause',
    );
  });

  it('a monitoring query that does not return one number', async () => {
    const file = planFile(
      'shape.yaml',
      goodPlan.replace(
        "query: SELECT count(*) FROM customers_v2 WHERE first_name = ''",
        'query: SELECT count(*), max(email) FROM customers_v2',
      ),
    );
    const r = await runCli(['plan', 'check', file], env());
    expectRefused(
      r,
      1,
      'error: shape.yaml: run.monitor.checks[0].query: returns 2 columns: a check compares one value; select one row with one number',
    );
  });

  it('a computed key mapping', async () => {
    const before = await dbState();
    const file = planFile(
      'key.yaml',
      goodPlan.replace('mapping:\n  up:\n', 'mapping:\n  up:\n    id: id + 1\n'),
    );
    const r = await runCli(['plan', 'check', file], env());
    expectRefused(
      r,
      1,
      'error: key.yaml: mapping.up.id: key column "id" is computed ("id + 1"): rows are matched by key value in both tables, so a key must map to itself (a cast such as id::bigint is fine); remove the mapping or change the key',
    );
    expect(await dbState()).toEqual(before);
  });
});

describe(
  'plan files: YAML and file problems name the file and give a correct hint',
  CLI_TIMEOUT,
  () => {
    it('a YAML alias bomb', async () => {
      const bomb = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
        .concat(
          'bcdefgh'
            .split('')
            .map((c, i) => `${c}: &${c} [${Array(9).fill(`*${'abcdefgh'[i]}`).join(',')}]`),
        )
        .join('\n');
      const r = await runCli(['plan', 'check', planFile('bomb.yaml', bomb)], env());
      expectRefused(
        r,
        1,
        'error: bomb.yaml: expands too many YAML aliases (more than 100 alias uses, a resource exhaustion pattern): write the values out instead of nesting *aliases',
      );
    });

    it('a duplicate key', async () => {
      const file = planFile(
        'dup.yaml',
        goodPlan.replace(
          'source: public.customers',
          'source: public.customers\nsource: public.orders',
        ),
      );
      const r = await runCli(['plan', 'check', file], env());
      expectRefused(
        r,
        1,
        'error: dup.yaml: line 5, column 1: duplicate key "source": each key may appear once in a mapping; remove or rename one of them',
      );
    });

    it('a missing plan file', async () => {
      const file = join(work, 'nope.yaml');
      const r = await runCli(['plan', 'check', file], env());
      expectRefused(
        r,
        1,
        `error: ${file}: no such plan file: check the path (plans/ holds examples)`,
      );
    });

    it('binary garbage is refused without being echoed', async () => {
      const garbage = Buffer.alloc(4200);
      for (let i = 0; i < garbage.length; i++) garbage[i] = (i * 7919 + 13) % 256;
      const file = planFile('garbage.yaml', garbage);
      const r = await runCli(['plan', 'check', file], env());
      expectRefused(
        r,
        1,
        `error: ${file}: is not a text file (binary or not UTF-8): a plan file is UTF-8 text`,
      );
      expect(r.stderr.length).toBeLessThan(300);
    });
  },
);
