import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatFindings, lintFiles, lintSql, type Finding } from '../../src/lint';
import { runCli } from '../support/cli';
import { DOCS_PATH, renderRulesTable, tableCells, tableSection } from '../../src/lint/docs';

const root = fileURLToPath(new URL('../../', import.meta.url));

/** The real CLI's lint command, run from `cwd` (the repository by default). */
const cli = (args: string[], cwd = root) => runCli(['lint', ...args], {}, cwd);

describe('docs/lint-rules.md', () => {
  it('holds exactly the rule table of src/lint/rules.ts', async () => {
    const section = tableSection(await readFile(DOCS_PATH, 'utf8'));
    expect(section, 'rules markers missing in docs/lint-rules.md').toBeDefined();
    expect(
      tableCells(section!),
      'docs/lint-rules.md is out of date: run `node --import tsx src/lint/docs.ts && npx prettier --write docs/lint-rules.md`',
    ).toEqual(tableCells(renderRulesTable()));
  });
});

describe('the example migrations in migrations/', () => {
  it('pass the lint with no error-level finding', async () => {
    const dir = join(root, 'migrations');
    const files = (await readdir(dir)).filter((f) => f.endsWith('.sql')).map((f) => join(dir, f));
    expect(files.length).toBeGreaterThan(0);
    const r = await lintFiles(files);
    expect(
      r.findings
        .filter((f) => f.severity === 'error')
        .map((f) => `${f.file}:${f.line} ${f.rule}: ${f.message}`),
    ).toEqual([]);
    expect(r.files).toHaveLength(files.length);
  });
});

describe('formatFindings', () => {
  let findings: Finding[];
  beforeAll(async () => {
    findings = await lintSql(
      'SELECT 1;\nALTER TABLE users RENAME COLUMN a TO b;\nCREATE TABLE t (v varchar(9));',
      {
        file: 'migrations/0002_x,y.up.sql',
        transactional: true,
      },
    );
  });

  it('json is the findings, parseable', () => {
    expect(JSON.parse(formatFindings(findings, 'json'))).toEqual(findings);
  });

  it('text names file:line:column, severity, rule, why, the safe form and the suggestion', () => {
    const text = formatFindings(findings, 'text');
    expect(text).toContain('migrations/0002_x,y.up.sql:2:1: error [rename-column]');
    expect(text).toContain('why: Application instances');
    expect(text).toContain('instead: Expand/contract');
    expect(text).toContain('| Expand/contract (each step its own migration/deploy):');
    expect(text).toContain('warning [prefer-text]');
  });

  it('github emits one escaped workflow command per finding', () => {
    const lines = formatFindings(findings, 'github').split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(
      /^::error file=migrations\/0002_x%2Cy\.up\.sql,line=2,col=1,title=cutover lint%3A rename-column::renaming column users\.a/,
    );
    expect(lines[0]).toContain('%0AWhy: ');
    expect(lines[1]).toMatch(/^::warning file=.*,line=3,col=17,/);
  });
});

describe('cutover lint (CLI)', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cutover-lint-cli-'));
    await writeFile(
      join(dir, '0001_ok.up.sql'),
      'CREATE TABLE t (id bigint PRIMARY KEY, name text);\n',
    );
    await writeFile(join(dir, '0001_ok.down.sql'), 'DROP TABLE t;\n');
    await writeFile(
      join(dir, '0002_bad.up.sql'),
      'SELECT 1;\nALTER TABLE users ALTER COLUMN id TYPE bigint;\n',
    );
    await writeFile(join(dir, '0003_broken.up.sql'), 'ALTER TABLE t ADD COLUMN;\n');
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('exits 0 with a summary when nothing is wrong', async () => {
    const r = await cli([join(dir, '0001_ok.up.sql'), join(dir, '0001_ok.down.sql')]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('0 error(s), 0 warning(s) in 2 file(s)');
  });

  it('exits 1 on an error-level finding and on a syntax error, reported with positions', async () => {
    const r = await cli(['--dir', dir]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`${join(dir, '0002_bad.up.sql')}:2:32: error [alter-column-type]`);
    expect(r.stdout).toContain(`${join(dir, '0003_broken.up.sql')}:1:25: error [syntax-error]`);
  });

  it('--json (and --format json) print the whole result', async () => {
    for (const flags of [['--json'], ['--format', 'json']]) {
      const r = await cli([...flags, join(dir, '0002_bad.up.sql')]);
      expect(r.code).toBe(1);
      const out = JSON.parse(r.stdout);
      expect(out).toMatchObject({ errorCount: 1, warningCount: 0, ignored: [] });
      expect(out.findings[0]).toMatchObject({ rule: 'alter-column-type', line: 2, column: 32 });
    }
  });

  it('--format github annotates', async () => {
    const r = await cli(['--format', 'github', join(dir, '0002_bad.up.sql')]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(
      /^::error file=.*0002_bad\.up\.sql,line=2,col=32,title=cutover lint%3A alter-column-type::/,
    );
  });

  it('--since reads earlier migrations as applied context', async () => {
    await writeFile(join(dir, '0004_idx.up.sql'), 'CREATE INDEX t_name_idx ON t (name);\n');
    try {
      const all = await cli(['--json', join(dir, '0001_ok.up.sql'), join(dir, '0004_idx.up.sql')]);
      expect(JSON.parse(all.stdout).findings).toEqual([]);
      const since = await cli([
        '--json',
        '--since',
        '0004',
        join(dir, '0001_ok.up.sql'),
        join(dir, '0004_idx.up.sql'),
      ]);
      expect(since.code).toBe(1);
      expect(JSON.parse(since.stdout).findings.map((f: Finding) => f.rule)).toEqual([
        'create-index-not-concurrently',
      ]);
    } finally {
      await rm(join(dir, '0004_idx.up.sql'));
    }
  });

  it('exits 2 on usage errors', async () => {
    for (const args of [
      ['--format', 'xml'],
      [join(dir, 'missing.sql')],
      ['--dir', join(dir, 'nope')],
      ['--since', 'abc'],
    ]) {
      const r = await cli(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr.length).toBeGreaterThan(0);
    }
  });
});
