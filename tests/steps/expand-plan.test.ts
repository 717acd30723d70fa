/**
 * The example plan with expand/contract steps (plans/expand-contract-users.yaml) against the
 * example application's database (migrations/), through `cutover plan check`: accepted as it
 * is; refused, naming the offending keys and changing nothing, when the data would not fit what
 * its steps build — judged on the values the earlier steps of the plan will write.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { catalogSnapshot } from '../../src/plan/catalog';
import { checkPlan, parsePlan } from '../../src/plan/index';
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
      /stages\[0\]\.steps\[3\]: public\.users would have duplicates under the new unique index users_email_lower_key: \(ann@x\.com\) \(2 rows\); remove them first/,
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
        `stages\\[0\\]\\.steps\\[2\\]: public\\.users\\.email_lower would be NULL in rows with key ${bob} even after the earlier backfillColumn step`,
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
        `stages\\[0\\]\\.steps\\[4\\]: public\\.users would have rows that users_email_lower_check rejects, with key ${first}, ${first + 1}, `,
      ),
    );
  });

  it('refuses bad input in its steps: a type that does not exist, a mapping that does not compile', async () => {
    const text = planText
      .replace('type: text }', 'type: no_such_type }')
      .replace('columns: { user_id: id }', 'columns: { user_id: no_such_column }');
    const found = await problems(text);
    expect(found).toMatch(
      /stages\[0\]\.steps\[0\]: type "no_such_type" of email_lower: .*does not exist/,
    );
    expect(found).toMatch(
      /stages\[3\]\.steps\[0\]: batch migration user_preferences_rows: .*no_such_column/,
    );
  });
});
