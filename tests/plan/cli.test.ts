import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { catalogSnapshot } from '../../src/plan/catalog';
import { runCli } from '../support/cli';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { exampleSchema } from './fixtures';

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase('plancli');
  await db.pool.query(exampleSchema);
});

afterAll(async () => {
  await db?.drop();
});

const env = () => ({ DATABASE_URL: db.url, CUTOVER_DATABASE_URL: undefined });

describe('cutover plan', () => {
  it('check prints a summary of a good plan and exits 0', async () => {
    const r = await runCli(['plan', 'check', 'plans/split-name.yaml'], env());
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/plan split_customer_name \(split-name\.yaml\): OK/);
    expect(r.stdout).toMatch(/source +public\.customers/);
    expect(r.stdout).toMatch(/key +\(id\)/);
    expect(r.stdout).toMatch(/two-way/);
    expect(r.stdout).toMatch(/first_name ← split_part\(name, ' ', 1\)/);
    expect(r.stdout).toMatch(/shift +route 10% → monitor 600s → route 50% → monitor 1800s/);
    expect(r.stdout).toMatch(/triggers +none on public\.customers/);
  });

  it("check lists the source table's own triggers", async () => {
    await db.pool.query(`
      CREATE FUNCTION touch_customer() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RETURN NEW; END $$;
      CREATE TRIGGER touch BEFORE INSERT OR UPDATE ON customers
        FOR EACH ROW EXECUTE FUNCTION touch_customer();`);
    try {
      const r = await runCli(['plan', 'check', 'plans/split-name.yaml'], env());
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/triggers +on public\.customers \(the new table gets none/);
      expect(r.stdout).toContain(
        'touch: BEFORE INSERT OR UPDATE FOR EACH ROW → public.touch_customer()',
      );
    } finally {
      await db.pool.query('DROP TRIGGER touch ON customers; DROP FUNCTION touch_customer()');
    }
  });

  it('check --json prints the workflow input', async () => {
    const r = await runCli(['plan', 'check', 'plans/widen-orders-id.yaml', '--json'], env());
    expect(r.code).toBe(0);
    const plan = JSON.parse(r.stdout);
    expect(plan.change.targetKey).toEqual(['id']);
    expect(plan.stages[0].steps.map((s: { id: string }) => s.id)).toEqual([
      'prepare.backup',
      'prepare.shadow',
      'prepare.sync',
      'prepare.backfill',
      'prepare.index',
    ]);
  });

  it('check lists every problem, exits 1 and changes nothing', async () => {
    const c = await db.pool.connect();
    try {
      const before = await catalogSnapshot(c);
      const file = `${process.env.TMPDIR ?? '/tmp'}/cutover-bad-${process.pid}.yaml`;
      const { writeFile, rm } = await import('node:fs/promises');
      await writeFile(
        file,
        `name: bad\nsource: orders\ntarget: { table: orders_v2, like: source }\nmapping:\n  up: { total: nosuch + 1, note: "1/" }\n`,
      );
      try {
        const r = await runCli(['plan', 'check', file], env());
        expect(r.code).toBe(1);
        expect(r.stderr).toMatch(/mapping\.up\.note: expression not a valid SQL expression/);
        const r2 = await runCli(['plan', 'check', file.replace('bad', 'missing')], env());
        expect(r2.code).toBe(1);
        expect(r2.stderr).toMatch(/missing-\d+\.yaml: no such plan file: check the path/);
        await writeFile(
          file,
          `name: bad\nsource: orders\ntarget: { table: orders_v2, like: source }\nmapping:\n  up: { total: nosuch + 1 }\n`,
        );
        const r3 = await runCli(['plan', 'check', file], env());
        expect(r3.code).toBe(1);
        expect(r3.stderr).toMatch(
          /mapping\.up\.total: expression does not compile against public\.orders: column "nosuch" does not exist/,
        );
      } finally {
        await rm(file, { force: true });
      }
      expect(await catalogSnapshot(c)).toBe(before);
    } finally {
      c.release();
    }
  });

  it('show works offline', async () => {
    const r = await runCli(['plan', 'show', 'plans/rename-posts-articles.yaml'], {
      DATABASE_URL: undefined,
      CUTOVER_DATABASE_URL: undefined,
    });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/rename_posts_articles: public\.posts → articles/);
  });
});
