import { describe, expect, it } from 'vitest';
import { maskSecrets, quoteInput, safeMessage } from '../../src/safe-text';
import { readOnlyQueryProblem } from '../../src/sql/read-only';
import { computedKeyProblems } from '../../src/sql/key-mapping';
import { legacyChecksums, scriptChecksum, sha256 } from '../../src/migrate/checksum';
import { lintTemp } from '../lint/helpers';

const SECRET = 'Sup3rSecretPw';

describe('maskSecrets', () => {
  it.each([
    [`postgres://app:${SECRET}@db:5432/app`, 'postgres://app:***@db:5432/app'],
    [`"postgresql://app:p@${SECRET}@db/app" is bad`, '"postgresql://app:***@db/app" is bad'],
    [`host=db password=${SECRET} user=app`, 'host=db password=*** user=app'],
    [
      `postgres://app@db/app?sslmode=require&password=${SECRET}`,
      'postgres://app@db/app?sslmode=require&password=***',
    ],
    [`https://user:${SECRET}@hooks.example.com/x`, 'https://user:***@hooks.example.com/x'],
  ])('%s', (input, masked) => {
    expect(maskSecrets(input)).toBe(masked);
    expect(maskSecrets(input)).not.toContain(SECRET);
  });

  it('leaves text without credentials alone', () => {
    const text = 'see https://example.com/a@b and "unexpected token: x" at line 3';
    expect(maskSecrets(text)).toBe(text);
  });
});

describe('quoteInput and safeMessage', () => {
  it('escape non-printables, cut long input naming its length, mask credentials', () => {
    expect(quoteInput('a\u0000b\u001b[31m\ufeffc"d')).toBe('"a\\x00b\\x1b[31m\\ufeffc\\"d"');
    expect(quoteInput('x'.repeat(100), 10)).toBe('"xxxxxxxxxx…" (100 characters)');
    expect(quoteInput(`postgres://u:${SECRET}@h/d`)).toBe('"postgres://u:***@h/d"');
  });

  it('bound a message in lines and line length, keeping its own newlines', () => {
    const msg = safeMessage(`first\n${'y'.repeat(1000)}\n${'z\n'.repeat(100)}`);
    const lines = msg.split('\n');
    expect(lines[0]).toBe('first');
    expect(lines[1]).toBe(`${'y'.repeat(400)}…`);
    expect(lines).toHaveLength(51);
    expect(lines[50]).toBe('  … and 53 more line(s)');
  });
});

describe('readOnlyQueryProblem', () => {
  it.each([
    'SELECT count(*) FROM orders',
    'WITH x AS (SELECT 1 AS a) SELECT a FROM x',
    'SELECT 1 UNION ALL SELECT random()::int',
    "SELECT count(*) FROM orders WHERE note = 'DELETE FROM orders'",
  ])('accepts %s', (sql) => expect(readOnlyQueryProblem(sql)).toBeNull());

  it.each([
    ['WITH d AS (DELETE FROM t RETURNING 1) SELECT count(*) FROM d', /data-modifying DELETE/],
    [
      'SELECT * FROM (WITH u AS (UPDATE t SET a = 1 RETURNING a) SELECT a FROM u) s',
      /data-modifying UPDATE/,
    ],
    ['SELECT a INTO b FROM c', /SELECT … INTO creates a table/],
    ['SELECT 1 FROM t FOR UPDATE', /must not lock rows/],
    ['SELECT * FROM (SELECT a FROM t FOR SHARE) s', /must not lock rows/],
    ["SELECT pg_catalog.setval('s', 1)", /calls setval\(\)/],
    ['SELECT pg_advisory_lock(1)', /calls pg_advisory_lock\(\)/],
    ['DELETE FROM t', /must be a SELECT statement, found DELETE/],
    ['SELECT 1; SELECT 2', /exactly one statement/],
  ])('refuses %s', (sql, problem) => expect(readOnlyQueryProblem(sql)).toMatch(problem));
});

describe('computedKeyProblems', () => {
  it('allows a key mapped to itself or cast; refuses anything computed', () => {
    expect(computedKeyProblems(['id'], { up: { id: 'id::bigint' }, down: { id: '(id)' } })).toEqual(
      [],
    );
    expect(computedKeyProblems(['id'], { up: { total: 'amount + 1' } })).toEqual([]);
    expect(computedKeyProblems(['id'], { up: { id: 'id + 1' } })).toEqual([
      {
        path: 'mapping.up.id',
        message: expect.stringMatching(/^key column "id" is computed \("id \+ 1"\)/),
      },
    ]);
    expect(computedKeyProblems(['tenant', 'seq'], { up: {}, down: { seq: 'other' } })).toHaveLength(
      1,
    );
  });
});

describe('migration checksums', () => {
  it('ignore the BOM and line endings; the old raw checksums of any ending style stay accepted', () => {
    const lf = 'CREATE TABLE t (id int);\nSELECT 1;\n';
    const crlfBom = `\ufeff${lf.replace(/\n/g, '\r\n')}`;
    expect(scriptChecksum(crlfBom)).toBe(scriptChecksum(lf));
    expect(scriptChecksum(lf)).toBe(sha256(lf));
    // Applied as CRLF (old raw sha), now checked out as LF.
    expect(legacyChecksums(lf)).toContain(sha256(lf.replace(/\n/g, '\r\n')));
    expect(legacyChecksums(lf)).toContain(sha256(crlfBom));
    expect(scriptChecksum('CREATE TABLE t (id bigint);\nSELECT 1;\n')).not.toBe(scriptChecksum(lf));
  });
});

describe('the lint reads migration files as the runner does', () => {
  it('a BOM and CRLF endings are not a syntax error', async () => {
    const r = await lintTemp({
      '0002_x.up.sql': '\ufeffALTER TABLE users ADD COLUMN nickname text;\r\nSELECT 1;\r\n',
    });
    expect(r.findings).toEqual([]);
  });
});
