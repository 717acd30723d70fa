import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { catalogSnapshot } from '../../src/plan/catalog';
import { checkPlan, parsePlan } from '../../src/plan/index';
import { preflightPlan } from '../../src/plan/preflight';
import { createTestDatabase, type TestDatabase } from '../support/db';

let db: TestDatabase;
let client: pg.PoolClient;

/**
 * 1,000 rows that all map, plus a few that do not, at keys the tests name. Batches of 100 so
 * the offenders sit in different keyset batches than the first one.
 */
beforeAll(async () => {
  db = await createTestDatabase('preflight');
  await db.pool.query(`
    CREATE TABLE items (id bigint PRIMARY KEY, s text NOT NULL, n bigint NOT NULL, note text, code text);
    INSERT INTO items SELECT g, 'abc', g, 'x', 'c' || g FROM generate_series(1, 1000) g;
    -- lossy rows
    UPDATE items SET s = 'abcdefghij' WHERE id IN (417, 802);
    UPDATE items SET n = 3000000000 WHERE id = 555;
    UPDATE items SET note = NULL WHERE id IN (333, 901);
    UPDATE items SET code = 'dup' WHERE id IN (250, 760);
    UPDATE items SET note = 'MiXed' WHERE id = 640;
  `);
  client = await db.pool.connect();
});

afterAll(async () => {
  client?.release();
  await db?.drop();
});

const planYaml = (ddl: string, mapping: string) => `
name: preflight_case
source: public.items
target:
  table: items_v2
  ddl: ${JSON.stringify(ddl)}
mapping:
${mapping}
backfill:
  batchSize: 100
`;

const ALL_TEXT =
  'CREATE TABLE items_v2 (id bigint PRIMARY KEY, s text NOT NULL, n bigint NOT NULL, note text, code text)';

/** Checks the plan; asserts it changed nothing; returns the report. */
async function check(yaml: string) {
  const before = await catalogSnapshot(client);
  const report = await checkPlan(parsePlan(yaml, 'case.yaml'), client, { fileName: 'case.yaml' });
  expect(await catalogSnapshot(client)).toBe(before);
  return { report, text: report.problems.map((p) => `${p.path}: ${p.message}`).join('\n') };
}

describe('plan check pre-flight: every row must map', () => {
  it('passes a lossless change (the same table, re-typed wider)', async () => {
    const { report } = await check(planYaml(ALL_TEXT, '  up: {}\n  down: {}'));
    expect(report.ok).toBe(true);
  });

  it('refuses an explicit cast that truncates silently (s::varchar(5) with down: {})', async () => {
    const ddl = ALL_TEXT.replace('s text', 's varchar(5)');
    const { report, text } = await check(planYaml(ddl, '  up: { s: "s::varchar(5)" }\n  down: {}'));
    expect(report.ok).toBe(false);
    expect(text).toMatch(/^mapping\.down\.s: down\(up\(row\)\) does not give back/m);
    expect(text).toContain('(id)=(417); (id)=(802)');
    expect(text).toContain('mapping.lossy');
  });

  it('refuses the explicit cast in a reads-only plan too (no down to round-trip through)', async () => {
    const ddl = ALL_TEXT.replace('s text', 's varchar(5)');
    const { report, text } = await check(planYaml(ddl, '  up: { s: "s::varchar(5)" }'));
    expect(report.ok).toBe(false);
    expect(text).toMatch(
      /^mapping\.up\.s: a cast in mapping\.up\.s changes the value \(truncated or rounded, silently\) at \(id\)=\(417\); \(id\)=\(802\)/m,
    );
  });

  it('accepts the same mapping once declared lossy, with the reason kept in the resolved plan', async () => {
    const ddl = ALL_TEXT.replace('s text', 's varchar(5)');
    const { report } = await check(
      planYaml(
        ddl,
        '  up: { s: "s::varchar(5)" }\n  down: {}\n  lossy: codes longer than 5 characters are junk',
      ),
    );
    expect(report.problems).toEqual([]);
    expect(report.plan!.change.lossy).toBe('codes longer than 5 characters are junk');
  });

  it('refuses text into varchar(5) without a cast (the new table would reject the value)', async () => {
    const ddl = ALL_TEXT.replace('s text', 's varchar(5)');
    const { report, text } = await check(planYaml(ddl, '  up: {}'));
    expect(report.ok).toBe(false);
    expect(text).toMatch(
      /^mapping\.up\.s: value does not fit target column "s" \(character varying\(5\)\)/m,
    );
    expect(text).toContain('(id)=(417); (id)=(802)');
    // Declaring it lossy does not help: INSERT would fail on these rows.
    const lossy = await check(planYaml(ddl, '  up: {}\n  lossy: fine'));
    expect(lossy.report.ok).toBe(false);
    expect(lossy.text).toContain('(id)=(417)');
  });

  it('refuses bigint into integer overflow, naming the row that raises', async () => {
    const ddl = ALL_TEXT.replace('n bigint', 'n integer');
    const { report, text } = await check(planYaml(ddl, '  up: {}\n  down: {}'));
    expect(report.ok).toBe(false);
    expect(text).toMatch(
      /^mapping\.up\.n: the mapping fails on \(id\)=\(555\): integer out of range \(SQLSTATE 22003\)/m,
    );
  });

  it('refuses NULL into a NOT NULL column', async () => {
    const ddl = ALL_TEXT.replace('note text', 'note text NOT NULL');
    const { report, text } = await check(planYaml(ddl, '  up: {}\n  down: {}'));
    expect(report.ok).toBe(false);
    expect(text).toMatch(
      /^mapping\.up\.note: target column "note" is NOT NULL but the mapping gives NULL at \(id\)=\(333\); \(id\)=\(901\)/m,
    );
  });

  it('refuses a duplicate under a new unique key', async () => {
    const ddl = `${ALL_TEXT}; CREATE UNIQUE INDEX items_v2_code_key ON items_v2 (code)`;
    const { report, text } = await check(planYaml(ddl, '  up: {}\n  down: {}'));
    expect(report.ok).toBe(false);
    expect(text).toMatch(
      /unique index "items_v2_code_key" of the new table would get duplicate values: \(code\)=\(dup\) at \(id\)=\(250\), \(id\)=\(760\)/,
    );
  });

  it('refuses a down mapping that does not round-trip', async () => {
    const { report, text } = await check(
      planYaml(ALL_TEXT, '  up: { note: "lower(note)" }\n  down: { note: "upper(note)" }'),
    );
    expect(report.ok).toBe(false);
    // Every row with a note fails ('x' ≠ 'X'); only the first five are named.
    expect(text).toMatch(
      /^mapping\.down\.note: down\(up\(row\)\) does not give back source column "note" at \(id\)=\(1\); \(id\)=\(2\); \(id\)=\(3\); \(id\)=\(4\); \(id\)=\(5\):/m,
    );
  });

  it('runs again from a resolved plan, as the run does before its first write', async () => {
    const { report } = await check(planYaml(ALL_TEXT, '  up: {}\n  down: {}'));
    const plan = report.plan!;
    const before = await catalogSnapshot(client);
    expect((await preflightPlan(client, plan)).ok).toBe(true);
    // A lossy row that arrives after the plan check is caught by the run's pre-flight.
    await client.query(`UPDATE items SET note = 'MiXeD' WHERE id = 700`);
    const lowered = structuredClone(plan);
    lowered.change.up = lowered.change.up.map((m) =>
      m.column === 'note' ? { ...m, expression: 'lower("note")' } : m,
    );
    const pre = await preflightPlan(client, lowered);
    expect(await catalogSnapshot(client)).toBe(before);
    expect(pre.ok).toBe(false);
    expect(pre.rowsChecked).toBeGreaterThan(0);
    expect(pre.problems.map((p) => p.message).join('\n')).toContain('(id)=(640); (id)=(700)');
  });
});
