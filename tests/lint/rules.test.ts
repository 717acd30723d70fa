import { describe, expect, it } from 'vitest';
import { RULES, type RuleId } from '../../src/lint';
import { NO_TX, lintTemp } from './helpers';

/**
 * One bad and one good example per rule. Each example is a migration file (`0002_x.up.sql`
 * unless `file` says otherwise) linted through lintFiles; `context` is an already-applied
 * migration (so its tables count as existing, busy tables).
 */
interface Example {
  sql: string;
  file?: string;
  context?: string;
  serverVersion?: number;
  runnerSetsLockTimeout?: boolean;
}
interface Case {
  bad: Example;
  good: Example[];
}

const USERS = `CREATE TABLE users (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, email text, name varchar(50), legacy text);`;

const cases: Record<RuleId, Case> = {
  'syntax-error': {
    bad: { sql: 'ALTER TABLE users ADD COLUMN;' },
    good: [{ sql: 'ALTER TABLE users ADD COLUMN nickname text;' }],
  },
  'invalid-ignore': {
    bad: { sql: '-- cutover-lint:ignore truncate-cascade\nTRUNCATE users CASCADE;' },
    good: [
      {
        sql: '-- cutover-lint:ignore truncate-cascade -- nothing references users here\nTRUNCATE users CASCADE;',
      },
    ],
  },
  'transaction-control': {
    bad: { sql: 'BEGIN;\nALTER TABLE users ADD COLUMN nickname text;\nCOMMIT;' },
    good: [{ sql: 'ALTER TABLE users ADD COLUMN nickname text;' }],
  },
  'create-index-not-concurrently': {
    bad: { sql: 'CREATE INDEX users_email_idx ON users (email);' },
    good: [
      { sql: `${NO_TX}CREATE INDEX CONCURRENTLY users_email_idx ON users (email);` },
      {
        sql: 'CREATE TABLE tags (id bigint PRIMARY KEY, name text);\nCREATE INDEX tags_name_idx ON tags (name);',
      },
    ],
  },
  'drop-index-not-concurrently': {
    bad: { sql: 'DROP INDEX users_email_idx;' },
    good: [
      { sql: `${NO_TX}DROP INDEX CONCURRENTLY users_email_idx;` },
      {
        sql: 'CREATE TABLE tags (id bigint PRIMARY KEY, name text);\nCREATE INDEX tags_name_idx ON tags (name);\nDROP INDEX tags_name_idx;',
      },
    ],
  },
  'concurrently-in-transaction': {
    bad: { sql: 'CREATE INDEX CONCURRENTLY users_email_idx ON users (email);' },
    good: [
      { sql: `${NO_TX}CREATE INDEX CONCURRENTLY users_email_idx ON users (email);` },
      { sql: `-- posts is busy\n${NO_TX}DROP INDEX CONCURRENTLY users_email_idx;` },
    ],
  },
  'constraint-not-valid': {
    bad: {
      sql: 'ALTER TABLE posts ADD CONSTRAINT posts_user_fk FOREIGN KEY (user_id) REFERENCES users (id);',
    },
    good: [
      {
        sql:
          'ALTER TABLE posts ADD CONSTRAINT posts_user_fk FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID;\n' +
          'ALTER TABLE posts VALIDATE CONSTRAINT posts_user_fk;',
      },
      {
        sql: 'ALTER TABLE users ADD CONSTRAINT users_email_len CHECK (length(email) < 300) NOT VALID;',
      },
    ],
  },
  'set-not-null': {
    bad: { sql: 'ALTER TABLE users ALTER COLUMN email SET NOT NULL;' },
    good: [
      {
        sql:
          'ALTER TABLE users ADD CONSTRAINT users_email_nn CHECK (email IS NOT NULL) NOT VALID;\n' +
          'ALTER TABLE users VALIDATE CONSTRAINT users_email_nn;\n' +
          'ALTER TABLE users ALTER COLUMN email SET NOT NULL;\n' +
          'ALTER TABLE users DROP CONSTRAINT users_email_nn;',
      },
      {
        context:
          'ALTER TABLE users ADD CONSTRAINT users_email_nn CHECK (email IS NOT NULL) NOT VALID;',
        sql: 'ALTER TABLE users VALIDATE CONSTRAINT users_email_nn;\nALTER TABLE users ALTER COLUMN email SET NOT NULL;',
      },
    ],
  },
  'add-column-not-null-without-default': {
    bad: { sql: 'ALTER TABLE users ADD COLUMN plan text NOT NULL;' },
    good: [
      { sql: "ALTER TABLE users ADD COLUMN plan text NOT NULL DEFAULT 'free';" },
      { sql: 'ALTER TABLE users ADD COLUMN plan text;' },
    ],
  },
  'add-column-volatile-default': {
    bad: { sql: 'ALTER TABLE users ADD COLUMN token uuid DEFAULT gen_random_uuid();' },
    good: [
      { sql: 'ALTER TABLE users ADD COLUMN seen_at timestamptz DEFAULT now();' },
      {
        sql:
          'ALTER TABLE users ADD COLUMN token uuid;\n' +
          'ALTER TABLE users ALTER COLUMN token SET DEFAULT gen_random_uuid();',
      },
    ],
  },
  'alter-column-type': {
    bad: { sql: 'ALTER TABLE users ALTER COLUMN name TYPE integer USING name::integer;' },
    good: [
      { context: USERS, sql: 'ALTER TABLE users ALTER COLUMN name TYPE varchar(100);' },
      { context: USERS, sql: 'ALTER TABLE users ALTER COLUMN name TYPE text;' },
    ],
  },
  'rename-column': {
    bad: { sql: 'ALTER TABLE users RENAME COLUMN name TO full_name;' },
    good: [{ file: '0002_x.down.sql', sql: 'ALTER TABLE users RENAME COLUMN full_name TO name;' }],
  },
  'rename-table': {
    bad: { sql: 'ALTER TABLE users RENAME TO accounts;' },
    good: [
      {
        sql: 'ALTER TABLE users RENAME TO accounts;\nCREATE VIEW users AS SELECT * FROM accounts;',
      },
      { file: '0002_x.down.sql', sql: 'ALTER TABLE accounts RENAME TO users;' },
    ],
  },
  'drop-column': {
    bad: { sql: 'ALTER TABLE users DROP COLUMN legacy;' },
    good: [
      {
        context: "COMMENT ON COLUMN users.legacy IS 'deprecated: unused since v42';",
        sql: 'ALTER TABLE users DROP COLUMN legacy;',
      },
      { file: '0002_x.down.sql', sql: 'ALTER TABLE users DROP COLUMN legacy;' },
    ],
  },
  'drop-table': {
    bad: { sql: 'DROP TABLE sessions;' },
    good: [
      {
        context: "COMMENT ON TABLE sessions IS 'Deprecated: moved to redis';",
        sql: 'DROP TABLE sessions;',
      },
      { file: '0002_x.down.sql', sql: 'DROP TABLE sessions;' },
    ],
  },
  'unique-without-index': {
    bad: { sql: 'ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE (email);' },
    good: [
      {
        sql: 'ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE USING INDEX users_email_idx;',
      },
      { sql: 'ALTER TABLE users ADD CONSTRAINT users_pkey PRIMARY KEY USING INDEX users_id_idx;' },
    ],
  },
  'missing-lock-timeout': {
    bad: { runnerSetsLockTimeout: false, sql: 'ALTER TABLE users ADD COLUMN nickname text;' },
    good: [
      {
        runnerSetsLockTimeout: false,
        sql: "SET lock_timeout = '1s';\nALTER TABLE users ADD COLUMN nickname text;",
      },
      { sql: 'ALTER TABLE users ADD COLUMN nickname text;' },
    ],
  },
  'truncate-cascade': {
    bad: { sql: 'TRUNCATE sessions CASCADE;' },
    good: [{ sql: 'CREATE TABLE tags (id bigint PRIMARY KEY);\nTRUNCATE tags;' }],
  },
  truncate: {
    bad: { sql: 'TRUNCATE sessions;' },
    good: [
      { sql: 'CREATE TABLE tags (id bigint PRIMARY KEY);\nTRUNCATE tags;' },
      { sql: 'DELETE FROM sessions WHERE expires_at < now();' },
    ],
  },
  'reindex-not-concurrently': {
    bad: { sql: 'REINDEX INDEX users_email_idx;' },
    good: [
      { sql: `${NO_TX}REINDEX INDEX CONCURRENTLY users_email_idx;` },
      {
        sql: 'CREATE TABLE tags (id bigint PRIMARY KEY, name text);\nCREATE INDEX tags_name_idx ON tags (name);\nREINDEX TABLE tags;',
      },
    ],
  },
  'vacuum-full-or-cluster': {
    bad: { sql: `${NO_TX}VACUUM FULL users;` },
    good: [
      { sql: `${NO_TX}VACUUM (ANALYZE) users;` },
      {
        sql: 'CREATE TABLE tags (id bigint PRIMARY KEY);\nCLUSTER tags USING tags_pkey;',
      },
    ],
  },
  'whole-table-write': {
    bad: { sql: 'UPDATE users SET email = lower(email);' },
    good: [
      { sql: 'UPDATE users SET email = lower(email) WHERE id > 0 AND id <= 10000;' },
      {
        sql: 'CREATE TABLE tags (id bigint PRIMARY KEY, name text);\nDELETE FROM tags;',
      },
      { file: '0002_x.down.sql', sql: 'UPDATE users SET email = NULL;' },
    ],
  },
  'enum-value-used-in-transaction': {
    bad: {
      sql: "ALTER TYPE mood ADD VALUE 'meh';\nUPDATE users SET mood = 'meh' WHERE id = 1;",
    },
    good: [
      { sql: "ALTER TYPE mood ADD VALUE 'meh';\nUPDATE users SET mood = 'sad' WHERE id = 1;" },
      {
        sql: `${NO_TX}ALTER TYPE mood ADD VALUE 'meh';\nUPDATE users SET mood = 'meh' WHERE id = 1;`,
      },
    ],
  },
  'enum-value-in-transaction': {
    bad: { serverVersion: 110000, sql: "ALTER TYPE mood ADD VALUE 'meh';" },
    good: [
      { serverVersion: 110000, sql: `${NO_TX}ALTER TYPE mood ADD VALUE 'meh';` },
      { serverVersion: 150000, sql: "ALTER TYPE mood ADD VALUE 'meh';" },
    ],
  },
  'prefer-bigint': {
    bad: { sql: 'CREATE TABLE tags (id integer PRIMARY KEY, name text);' },
    good: [{ sql: 'CREATE TABLE tags (id bigint PRIMARY KEY, uses integer);' }],
  },
  'prefer-identity': {
    bad: { sql: 'CREATE TABLE tags (id bigserial PRIMARY KEY);' },
    good: [{ sql: 'CREATE TABLE tags (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY);' }],
  },
  'prefer-timestamptz': {
    bad: { sql: 'CREATE TABLE tags (id bigint PRIMARY KEY, created_at timestamp);' },
    good: [{ sql: 'CREATE TABLE tags (id bigint PRIMARY KEY, created_at timestamptz);' }],
  },
  'prefer-text': {
    bad: { sql: 'CREATE TABLE tags (id bigint PRIMARY KEY, name varchar(40));' },
    good: [{ sql: 'CREATE TABLE tags (id bigint PRIMARY KEY, name text);' }],
  },
};

async function run(e: Example) {
  return lintTemp(
    { [e.file ?? '0002_x.up.sql']: e.sql },
    {
      context: e.context ? { '0001_ctx.up.sql': e.context } : {},
      serverVersion: e.serverVersion,
      runnerSetsLockTimeout: e.runnerSetsLockTimeout,
    },
  );
}

describe('every rule', () => {
  it('has a bad and a good example here', () => {
    expect(Object.keys(cases).sort()).toEqual(RULES.map((r) => r.id).sort());
  });

  for (const rule of RULES) {
    const c = cases[rule.id];
    it(`${rule.id} fires on its bad example with its metadata`, async () => {
      const r = await run(c.bad);
      const hit = r.findings.find((f) => f.rule === rule.id);
      expect(hit, JSON.stringify(r.findings, null, 2)).toBeDefined();
      expect(hit).toMatchObject({
        severity: rule.severity,
        why: rule.why,
        safeAlternative: rule.safeAlternative,
      });
      expect(hit!.message.length).toBeGreaterThan(0);
    });
    c.good.forEach((g, i) => {
      it(`${rule.id} stays quiet on good example ${i + 1}`, async () => {
        const r = await run(g);
        expect(r.findings.map((f) => `${f.rule}: ${f.message}`)).toEqual([]);
      });
    });
  }
});
