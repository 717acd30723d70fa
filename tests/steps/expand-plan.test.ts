/**
 * The example expand/contract plan (plans/expand-contract-users.yaml: no source, no target, only
 * steps that change the tables they name) against the example application's database
 * (migrations/), through `cutover plan check`: accepted as it is; refused, naming the offending keys and changing nothing, when the data would not fit what
 * its steps build — judged on the values the earlier steps of the plan will write.
 */
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { catalogSnapshot } from '../../src/plan/catalog';
import { checkPlan, parsePlan, PlanError } from '../../src/plan/index';
import { runCli } from '../support/cli';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { exampleMigrationsDir } from '../support/migrations-dir';

let db: TestDatabase;
const PLAN = 'plans/expand-contract-users.yaml';
const planText = readFileSync(PLAN, 'utf8');

beforeAll(async () => {
  db = await createTestDatabase('expandplan');
  const ups = readdirSync(exampleMigrationsDir)
    .filter((f) => f.endsWith('.up.sql'))
    .sort();
  for (const f of ups) await db.pool.query(readFileSync(join(exampleMigrationsDir, f), 'utf8'));
});
afterAll(async () => {
  await db?.drop();
});
beforeEach(async () => {
  await db.pool.query(`TRUNCATE users, orders, posts, user_preferences`);
  await db.pool.query(`
    INSERT INTO users (email, name, avatar_url)
      SELECT 'User' || g || '@Example.com', 'user ' || g, 'a.png' FROM generate_series(1, 300) g;
    INSERT INTO orders (id, user_id, amount_cents)
      SELECT g, (SELECT min(id) FROM users), g FROM generate_series(1, 100) g;`);
});

async function problems(text: string): Promise<string> {
  const client = await db.pool.connect();
  try {
    const before = await catalogSnapshot(client);
    const report = await checkPlan(parsePlan(text, 'expand.yaml'), client, {
      fileName: 'expand.yaml',
    });
    expect(await catalogSnapshot(client)).toBe(before);
    return report.problems.map((p) => `${p.path}: ${p.message}`).join('\n');
  } finally {
    client.release();
  }
}

const userId = async (email: string) =>
  Number((await db.pool.query(`SELECT id FROM users WHERE email = $1`, [email])).rows[0].id);

describe('plans/expand-contract-users.yaml', () => {
  it('`cutover plan check` accepts it against the example application', async () => {
    const r = await runCli(['plan', 'check', PLAN], {
      DATABASE_URL: db.url,
      CUTOVER_DATABASE_URL: undefined,
    });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/plan release_42 \(expand-contract-users\.yaml\): OK/);
    expect(r.stdout).toContain('tables     public.users, public.user_preferences');
    // The stages say what each expand step changes.
    expect(r.stdout).toContain(
      'expand-users     addColumn public.users.email_lower → backfillColumn public.users.email_lower → setNotNull public.users.email_lower → createIndex users_email_lower_key → addConstraint users_email_lower_check',
    );
    expect(r.stdout).toContain('preferences      batchMigrate user_preferences_rows');
  });

  it('refuses a unique index over values the backfill would repeat, naming them', async () => {
    await db.pool.query(
      `INSERT INTO users (email, name, avatar_url) VALUES ('Ann@x.com', 'a', 'a'), ('ann@x.com', 'b', 'b')`,
    );
    expect(await problems(planText)).toMatch(
      /stages\[1\]\.steps\[3\]: public\.users would have duplicates under the new unique index users_email_lower_key: \(ann@x\.com\) \(2 rows\); remove them first/,
    );
  });

  it('refuses NOT NULL when the backfill expression would leave NULLs, naming the keys', async () => {
    const bob = await userId('User7@Example.com');
    const text = planText.replace(
      'expression: lower(email)',
      `expression: "nullif(lower(email), 'user7@example.com')"`,
    );
    expect(await problems(text)).toMatch(
      new RegExp(
        `stages\\[1\\]\\.steps\\[2\\]: public\\.users\\.email_lower would be NULL in rows with key ${bob} even after the earlier backfillColumn step`,
      ),
    );
  });

  it('refuses a check the backfilled values would break, naming the keys', async () => {
    const first = await userId('User1@Example.com');
    const text = planText.replace(
      'check: email_lower = lower(email)',
      'check: email_lower = email',
    );
    expect(await problems(text)).toMatch(
      new RegExp(
        `stages\\[1\\]\\.steps\\[4\\]: public\\.users would have rows that users_email_lower_check rejects, with key ${first}, ${first + 1}, `,
      ),
    );
  });

  it('refuses bad input in its steps: a type that does not exist, a mapping that does not compile', async () => {
    const text = planText
      .replace('type: text }', 'type: no_such_type }')
      .replace('columns: { user_id: id }', 'columns: { user_id: no_such_column }');
    const found = await problems(text);
    expect(found).toMatch(
      /stages\[1\]\.steps\[0\]: type "no_such_type" of email_lower: .*does not exist/,
    );
    expect(found).toMatch(
      /stages\[2\]\.steps\[0\]: batch migration user_preferences_rows: .*no_such_column/,
    );
  });
});

/** An expand/contract plan (no source / target) of the given steps, all in one stage. */
const expandPlan = (steps: string) => `name: release_43
stages:
  - name: expand
    steps:
${steps}`;

/** The check's problems of a plan the loader already refuses (nothing reaches the database). */
const parseProblems = (text: string) => {
  try {
    parsePlan(text, 'expand.yaml');
    return '';
  } catch (err) {
    expect(err).toBeInstanceOf(PlanError);
    return (err as PlanError).message;
  }
};

describe('a backfillColumn expression sees the table as the earlier steps leave it', () => {
  const DOMAIN = (expression: string) =>
    expandPlan(`      - { kind: addColumn, table: public.users, column: email_lower, type: text }
      - { kind: backfillColumn, table: public.users, column: email_lower, expression: lower(email) }
      - { kind: addColumn, table: public.users, column: email_domain, type: text }
      - kind: backfillColumn
        table: public.users
        column: email_domain
        expression: "${expression}"
      - { kind: setNotNull, table: public.users, column: email_domain }
`);

  it('accepts an expression reading a column an earlier step adds and fills', async () => {
    // email_lower exists only once the earlier steps ran: today's table has no such column.
    expect(await problems(DOMAIN(`split_part(email_lower, '@', 2)`))).toBe('');
  });

  it('judges later steps on the values that expression gives over the earlier backfill', async () => {
    const seven = await userId('User7@Example.com');
    // Only the earlier backfill makes user 7's email_lower 'user7@example.com'.
    expect(
      await problems(
        DOMAIN(`CASE WHEN email_lower = 'user7@example.com' THEN NULL ELSE 'example.com' END`),
      ),
    ).toMatch(
      new RegExp(
        `^stages\\[0\\]\\.steps\\[4\\]: public\\.users\\.email_domain would be NULL in rows with key ${seven} even after the earlier backfillColumn step`,
      ),
    );
  });

  it('fills an existing column from an added one, refusing what it would overwrite', async () => {
    const steps = (column: string) =>
      expandPlan(`      - { kind: addColumn, table: public.users, column: email_lower, type: text }
      - { kind: backfillColumn, table: public.users, column: email_lower, expression: lower(email) }
      - { kind: backfillColumn, table: public.users, column: ${column}, expression: "coalesce(${column}, email_lower)" }
`);
    await db.pool.query(`ALTER TABLE users ADD COLUMN contact text`);
    try {
      expect(await problems(steps('contact'))).toBe('');
      // name holds values already: filling it would overwrite them.
      expect(
        await problems(steps('name').replace('coalesce(name, email_lower)', 'email_lower')),
      ).toMatch(
        /^stages\[0\]\.steps\[2\]: public\.users\.name holds other values in rows with key \d+, \d+/,
      );
    } finally {
      await db.pool.query(`ALTER TABLE users DROP COLUMN contact`);
    }
  });

  it('still refuses an expression that does not compile, or is not one value per row', async () => {
    expect(await problems(DOMAIN('split_part(no_such_column, 1)'))).toMatch(
      /^stages\[0\]\.steps\[3\]: expression for public\.users\.email_domain: column "no_such_column" does not exist/,
    );
    expect(await problems(DOMAIN('max(email_lower)'))).toMatch(
      /^stages\[0\]\.steps\[3\]: expression for public\.users\.email_domain: aggregate functions are not allowed in WHERE/,
    );
    const typed =
      expandPlan(`      - { kind: addColumn, table: public.users, column: email_lower, type: text }
      - { kind: backfillColumn, table: public.users, column: email_lower, expression: lower(email) }
      - { kind: backfillColumn, table: public.users, column: created_at, expression: email_lower }
`);
    expect(await problems(typed)).toMatch(
      /^stages\[0\]\.steps\[2\]: expression for public\.users\.created_at: column "created_at" is of type timestamp with time zone but expression is of type text/,
    );
  });
});

describe('an expand/contract plan (no source / target)', () => {
  it('is checked and resolved as the workflow input, the tables its steps change listed', async () => {
    const client = await db.pool.connect();
    try {
      const report = await checkPlan(parsePlan(planText, 'expand.yaml'), client);
      expect(report.problems).toEqual([]);
      expect(report.plan).toBeUndefined();
      expect(report.expand).toMatchObject({
        kind: 'expand',
        name: 'release_42',
        connection: 'default',
        tables: ['public.users', 'public.user_preferences'],
      });
      expect(report.expand!.stages.map((s) => s.name)).toEqual([
        'backup',
        'expand-users',
        'preferences',
      ]);
    } finally {
      client.release();
    }
  });

  it('naming a missing table or column is refused with the step named, nothing changed', async () => {
    const found = await problems(
      expandPlan(`      - { kind: addColumn, table: public.no_such_table, column: c, type: text }
      - { kind: backfillColumn, table: public.users, column: no_such_column, expression: lower(email) }
      - { kind: setNotNull, table: public.users, column: also_missing }
      - { kind: createIndex, table: public.nope, index: nope_idx, columns: [a] }
`),
    );
    expect(found).toMatch(/stages\[0\]\.steps\[0\]: .*public\.no_such_table does not exist/);
    expect(found).toMatch(
      /stages\[0\]\.steps\[1\]: public\.users has no column no_such_column: add it first/,
    );
    expect(found).toMatch(
      /stages\[0\]\.steps\[2\]: public\.users has no column also_missing: add it first/,
    );
    expect(found).toMatch(/stages\[0\]\.steps\[3\]: .*public\.nope does not exist/);
  });

  it('mixing in steps that need a new table, or blue-green fields, is refused before the database', () => {
    const shadow = parseProblems(
      expandPlan(`      - { kind: addColumn, table: public.users, column: c, type: text }
      - { kind: shadow }
      - { kind: swap }
`),
    );
    expect(shadow).toMatch(
      /expand\.yaml: stages\[0\]\.steps\[1\]\.kind: step kind "shadow" needs a blue-green plan \(source and target: the new table it works on\); this plan has neither, so it is an expand\/contract plan, which runs backup, approval, monitor, hook, addColumn, .*: add source and target, or remove the step/,
    );
    expect(shadow).toMatch(
      /stages\[0\]\.steps\[2\]\.kind: step kind "swap" needs a blue-green plan/,
    );
    // Not the blue-green stage rules (shadow, sync, backfill required; their order).
    expect(shadow).not.toMatch(/is required|must come before/);

    expect(
      parseProblems(
        `${expandPlan(`      - { kind: addColumn, table: public.users, column: c, type: text }\n`)}mapping:\n  up: { c: "1" }\nshift: { steps: [] }\n`,
      ),
    ).toMatch(
      /expand\.yaml: mapping: only a blue-green plan \(with source and target\) has mapping: .*remove mapping, or add source and target\nexpand\.yaml: shift: only a blue-green plan/,
    );
    expect(
      parseProblems(
        `name: x\nsource: public.users\nstages: [{ name: a, steps: [{ kind: backup }] }]\n`,
      ),
    ).toMatch(/expand\.yaml: target: is required with source/);
    expect(parseProblems(`name: x\ntarget: { table: users_v2, like: source }\n`)).toMatch(
      /expand\.yaml: source: is required with target/,
    );
    expect(parseProblems(`name: x\n`)).toMatch(
      /expand\.yaml: stages: a plan without source and target is an expand\/contract plan: list its steps under stages/,
    );
  });

  it('`cutover plan check` prints it, and refuses a bad one naming every problem', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cutover-expand-plan-'));
    const bad = join(dir, 'bad.yaml');
    writeFileSync(
      bad,
      expandPlan(`      - { kind: setNotNull, table: public.users, column: no_such_column }
      - { kind: sync }
`),
    );
    const env = { DATABASE_URL: db.url, CUTOVER_DATABASE_URL: undefined };
    const r = await runCli(['plan', 'check', bad], env);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(
      /bad\.yaml: stages\[0\]\.steps\[1\]\.kind: step kind "sync" needs a blue-green plan/,
    );
    const show = await runCli(['plan', 'show', PLAN], env);
    expect(show.code).toBe(0);
    expect(show.stdout).toMatch(/^plan release_42: expand\/contract/);
  });
});
