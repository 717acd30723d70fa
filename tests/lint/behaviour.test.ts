import { describe, expect, it } from 'vitest';
import { lintSql, type Finding } from '../../src/lint';
import { NO_TX, lintTemp, rulesOf } from './helpers';

const lint = (sql: string, file = '0002_x.up.sql', transactional = true): Promise<Finding[]> =>
  lintSql(sql, { file, transactional });

const at = (f: Finding | undefined) => (f ? `${f.line}:${f.column}` : 'none');

describe('positions', () => {
  it('counts columns in characters after multi-byte UTF-8 on the same line and lines above', async () => {
    const before = "SELECT '😀é'; /* é */ ";
    const sql = `-- ünïcødé 😀 comment\n${before}CREATE INDEX i ON users (email);\n`;
    const [f] = await lint(sql);
    expect(f?.rule).toBe('create-index-not-concurrently');
    // 21 characters before CREATE: 22 UTF-16 units and 26 bytes, so only a code point count works.
    expect([[...before].length, before.length, Buffer.byteLength(before)]).toEqual([21, 22, 26]);
    expect(at(f)).toBe('2:22');
  });

  it('points at the constraint inside an ALTER TABLE, past a multi-byte table name', async () => {
    const before = '  ALTER TABLE "café😀" ADD ';
    const sql = `SELECT 1;\n\n${before}CONSTRAINT c CHECK (n > 0);`;
    const [f] = await lint(sql);
    expect(f?.rule).toBe('constraint-not-valid');
    expect([...before].length).toBe(26);
    expect(at(f)).toBe('3:27');
  });

  it('reports each finding at its own statement', async () => {
    const sql =
      'TRUNCATE a CASCADE;\nALTER TABLE users\n  RENAME COLUMN name TO full_name;\n   DROP TABLE old;';
    const fs = await lint(sql);
    expect(fs.map((f) => `${f.rule}@${at(f)}`)).toEqual([
      'truncate-cascade@1:1',
      'rename-column@2:1',
      'drop-table@4:4',
    ]);
  });
});

describe('syntax errors', () => {
  it('become a finding at the parser position instead of a crash', async () => {
    const sql = "SELECT 'é😀';\nALTER TABLE users ADD COLUMN;\n";
    const fs = await lint(sql);
    expect(fs).toHaveLength(1);
    expect(fs[0]).toMatchObject({ rule: 'syntax-error', severity: 'error', line: 2, column: 29 });
    expect(fs[0]!.message).toMatch(/syntax error at or near ";"/);
  });

  it('at end of input points past the last character', async () => {
    const fs = await lint('SELECT 1;\nSELECT (');
    expect(fs[0]).toMatchObject({ rule: 'syntax-error', line: 2, column: 9 });
  });

  it('for an unterminated string', async () => {
    const fs = await lint("SELECT 1;\n  SELECT 'abc");
    expect(fs[0]).toMatchObject({ rule: 'syntax-error', line: 2, column: 10 });
  });
});

describe('ignore comments', () => {
  const drop = 'DROP TABLE sessions;';

  it('switch off the named rule for the next statement only, and keep it with its reason', async () => {
    const r = await lintTemp({
      '0002_x.up.sql': `-- cutover-lint:ignore drop-table -- sessions moved to redis in v41\n${drop}\nDROP TABLE carts;`,
    });
    expect(r.findings.map((f) => `${f.rule}@${f.line}`)).toEqual(['drop-table@3']);
    expect(r.ignored).toHaveLength(1);
    expect(r.ignored[0]).toMatchObject({
      rule: 'drop-table',
      line: 2,
      reason: 'sessions moved to redis in v41',
    });
  });

  it('apply to the statement they trail on the same line', async () => {
    const fs = await lint(
      `${drop} -- cutover-lint:ignore drop-table -- moved to redis\nDROP TABLE carts;`,
    );
    expect(fs.map((f) => `${f.rule}@${f.line}`)).toEqual(['drop-table@2']);
  });

  it('work as /* */ comments and for several rules', async () => {
    const fs = await lint(
      '/* cutover-lint:ignore add-column-not-null-without-default, drop-column -- users is empty in every environment */\n' +
        'ALTER TABLE users DROP COLUMN c, ADD COLUMN d text NOT NULL;',
    );
    expect(fs).toEqual([]);
    const unignored = await lint('ALTER TABLE users DROP COLUMN c, ADD COLUMN d text NOT NULL;');
    expect(unignored.map((f) => f.rule).sort()).toEqual([
      'add-column-not-null-without-default',
      'drop-column',
    ]);
  });

  it('does not silence a rule it does not name', async () => {
    const fs = await lint(`-- cutover-lint:ignore drop-column -- wrong rule\n${drop}`);
    expect(rulesOf({ findings: fs } as never)).toEqual(['drop-table']);
  });

  it('per file, with a reason, silence the rule everywhere in the file', async () => {
    const fs = await lint(
      `-- cutover-lint:ignore-file drop-table -- this migration retires the cart feature\n${drop}\nDROP TABLE carts;`,
    );
    expect(fs).toEqual([]);
  });

  it('without a reason are rejected and silence nothing', async () => {
    for (const comment of [
      '-- cutover-lint:ignore drop-table',
      '-- cutover-lint:ignore drop-table --',
      '-- cutover-lint:ignore drop-table --    ',
      '-- cutover-lint:ignore-file drop-table',
    ]) {
      const fs = await lint(`${comment}\n${drop}`);
      expect(
        fs.map((f) => `${f.rule}@${at(f)}`),
        comment,
      ).toEqual(['invalid-ignore@1:1', 'drop-table@2:1']);
      expect(fs[0]!.message).toMatch(/no reason/);
    }
  });

  it('naming an unknown rule, no rule, or an unignorable rule are rejected', async () => {
    for (const [comment, msg] of [
      ['-- cutover-lint:ignore drop-tables -- typo', /unknown rule/],
      ['-- cutover-lint:ignore -- just because', /names no rule/],
      ['-- cutover-lint:ignore invalid-ignore -- sneaky', /cannot be ignored/],
      ['-- cutover-lint:skip drop-table -- wrong verb', /unknown lint directive/],
    ] as const) {
      const fs = await lint(`${comment}\n${drop}`);
      expect(rulesOf({ findings: fs } as never), comment).toEqual(['invalid-ignore', 'drop-table']);
      expect(fs[0]!.message).toMatch(msg);
    }
  });

  it('followed by no statement are rejected', async () => {
    const fs = await lint(`${drop}\n\n-- cutover-lint:ignore drop-table -- dangling`);
    expect(fs.map((f) => `${f.rule}@${at(f)}`)).toEqual(['drop-table@1:1', 'invalid-ignore@3:1']);
  });
});

describe('transactions', () => {
  it('reads cutover:no-transaction from the first 5 lines only, as the runner does', async () => {
    const idx = 'CREATE INDEX CONCURRENTLY users_email_idx ON users (email);';
    const lines = (n: number): string => '-- note\n'.repeat(n);
    expect(rulesOf(await lintTemp({ '0002_x.up.sql': `${NO_TX}${idx}` }))).toEqual([]);
    expect(
      rulesOf(await lintTemp({ '0002_x.up.sql': `${lines(4)}  --cutover:no-transaction\n${idx}` })),
    ).toEqual([]);
    expect(rulesOf(await lintTemp({ '0002_x.up.sql': `${lines(5)}${NO_TX}${idx}` }))).toEqual([
      'concurrently-in-transaction',
    ]);
    expect(
      rulesOf(await lintTemp({ '0002_x.up.sql': `-- not cutover:no-transaction\n${idx}` })),
    ).toEqual(['concurrently-in-transaction']);
  });

  it('lintSql takes transactional from its caller', async () => {
    const idx = 'CREATE INDEX CONCURRENTLY users_email_idx ON users (email);';
    expect(await lint(idx, 'x.sql', false)).toEqual([]);
    expect((await lint(idx, 'x.sql', true)).map((f) => f.rule)).toEqual([
      'concurrently-in-transaction',
    ]);
  });
});

describe('the linted set', () => {
  it('treats tables created by an earlier migration in the set as new', async () => {
    const r = await lintTemp({
      '0001_users.up.sql': 'CREATE TABLE users (id bigint PRIMARY KEY, email text);',
      '0001_users.down.sql': 'DROP TABLE users;',
      '0002_idx.up.sql':
        'CREATE INDEX users_email_idx ON users (email);\nALTER TABLE users ADD CONSTRAINT u UNIQUE (email);',
      '0002_idx.down.sql': 'DROP INDEX users_email_idx;',
    });
    expect(r.findings).toEqual([]);
    expect(r.files.map((f) => f.split('/').pop())).toEqual([
      '0001_users.up.sql',
      '0001_users.down.sql',
      '0002_idx.up.sql',
      '0002_idx.down.sql',
    ]);
  });

  it('treats tables from context (already applied) migrations as existing', async () => {
    const r = await lintTemp(
      { '0002_idx.up.sql': 'CREATE INDEX users_email_idx ON users (email);' },
      {
        context: { '0001_users.up.sql': 'CREATE TABLE users (id bigint PRIMARY KEY, email text);' },
      },
    );
    expect(rulesOf(r)).toEqual(['create-index-not-concurrently']);
    expect(r.files).toHaveLength(1);
  });

  it('lints a down script against the state after its own up script', async () => {
    // 0001's down drops users; 0002 must still see users as new (the drop never happens first).
    const r = await lintTemp({
      '0001_users.up.sql': 'CREATE TABLE users (id bigint PRIMARY KEY, email text);',
      '0001_users.down.sql': 'DROP TABLE users;',
      '0002_idx.up.sql': 'CREATE INDEX users_email_idx ON users (email);',
    });
    expect(r.findings).toEqual([]);
  });

  it('requires the deprecation marker in an EARLIER migration, not the same one', async () => {
    const r = await lintTemp({
      '0002_drop.up.sql':
        "COMMENT ON COLUMN users.legacy IS 'deprecated: unused';\nALTER TABLE users DROP COLUMN legacy;",
    });
    expect(r.findings[0]?.message).toMatch(/same migration that marks it deprecated/);
    const ok = await lintTemp({
      '0002_mark.up.sql': "COMMENT ON COLUMN users.legacy IS 'deprecated: unused';",
      '0003_drop.up.sql': 'ALTER TABLE users DROP COLUMN legacy;',
    });
    expect(ok.findings).toEqual([]);
  });

  it('knows column types to tell a rewrite from a binary-coercible change', async () => {
    const ctx = {
      context: {
        '0001_t.up.sql':
          'CREATE TABLE t (id bigint PRIMARY KEY, code varchar(20), amount numeric(10, 2));',
      },
    };
    const ok = await lintTemp(
      {
        '0002_x.up.sql':
          'ALTER TABLE t ALTER COLUMN code TYPE varchar(40), ALTER COLUMN amount TYPE numeric(14, 2);',
      },
      ctx,
    );
    expect(ok.findings).toEqual([]);
    const bad = await lintTemp(
      {
        '0002_x.up.sql':
          'ALTER TABLE t ALTER COLUMN code TYPE varchar(10), ALTER COLUMN amount TYPE numeric(14, 4);',
      },
      ctx,
    );
    expect(rulesOf(bad)).toEqual(['alter-column-type', 'alter-column-type']);
    expect(bad.findings[0]!.message).toMatch(/from varchar\(20\)/);
  });
});

describe('missing-lock-timeout', () => {
  it('fires once per file, also for drops a down script is allowed to make', async () => {
    const r = await lintTemp(
      { '0002_x.down.sql': 'DROP TABLE sessions;\nALTER TABLE users DROP COLUMN legacy;' },
      { runnerSetsLockTimeout: false },
    );
    expect(r.findings.map((f) => `${f.rule}@${f.line}`)).toEqual(['missing-lock-timeout@1']);
  });

  it('is satisfied by SET LOCAL and undone by RESET or 0', async () => {
    const opts = { runnerSetsLockTimeout: false };
    const alter = 'ALTER TABLE users ADD COLUMN n text;';
    expect(
      rulesOf(
        await lintTemp({ '0002_x.up.sql': `SET LOCAL lock_timeout TO 500;\n${alter}` }, opts),
      ),
    ).toEqual([]);
    expect(
      rulesOf(
        await lintTemp(
          { '0002_x.up.sql': `SET lock_timeout = '1s';\nRESET lock_timeout;\n${alter}` },
          opts,
        ),
      ),
    ).toEqual(['missing-lock-timeout']);
    expect(
      rulesOf(await lintTemp({ '0002_x.up.sql': `SET lock_timeout = 0;\n${alter}` }, opts)),
    ).toEqual(['missing-lock-timeout']);
  });
});

describe('suggestions', () => {
  it('a column type change proposes expand/contract steps and a cutover blue-green plan', async () => {
    const [f] = await lint('ALTER TABLE orders ALTER COLUMN id TYPE bigint;');
    expect(f?.rule).toBe('alter-column-type');
    expect(f?.suggestion).toMatch(/ALTER TABLE orders ADD COLUMN id_new bigint/);
    expect(f?.suggestion).toMatch(/backfill/);
    expect(f?.suggestion).toMatch(/shadow/);
  });

  it('renames propose expand/contract steps', async () => {
    const [col] = await lint('ALTER TABLE users RENAME COLUMN name TO full_name;');
    expect(col?.suggestion).toMatch(/ADD COLUMN full_name/);
    const [tbl] = await lint('ALTER TABLE users RENAME TO accounts;');
    expect(tbl?.suggestion).toMatch(/CREATE VIEW users AS SELECT \* FROM accounts/);
  });
});
