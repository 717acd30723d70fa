import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { catalogSnapshot } from '../../src/plan/catalog';
import { checkPlan, loadPlanFile, parsePlan, PlanError, resolvePlan } from '../../src/plan/index';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { exampleSchema } from './fixtures';

let db: TestDatabase;
let client: pg.PoolClient;

// The example plans name secrets (hook and router headers) that the plan check requires to be
// set, as a worker must have them: these tests run with stand-in values.
process.env.DEPLOY_TOKEN ??= 'test-deploy-token';
process.env.LB_TOKEN ??= 'test-lb-token';

beforeAll(async () => {
  db = await createTestDatabase('plan');
  await db.pool.query(exampleSchema);
  client = await db.pool.connect();
});

afterAll(async () => {
  client?.release();
  await db?.drop();
});

const base = `
name: widen_orders_id
source: public.orders
target:
  table: orders_v2
  like: source
  alter: [ALTER TABLE orders_v2 ALTER COLUMN id TYPE bigint]
mapping:
  up: { id: id::bigint }
  down: { id: id::integer }
`;

/** Parses and checks `yaml`; returns the error text (parse or check) and asserts nothing changed. */
async function problemsOf(yaml: string): Promise<string> {
  const before = await catalogSnapshot(client);
  let text = '';
  try {
    const plan = parsePlan(yaml, 'bad.yaml');
    const report = await checkPlan(plan, client, { fileName: 'bad.yaml' });
    expect(report.ok).toBe(false);
    text = report.problems.map((p) => `bad.yaml: ${p.path}: ${p.message}`).join('\n');
  } catch (err) {
    expect(err).toBeInstanceOf(PlanError);
    text = (err as Error).message;
  }
  expect(await catalogSnapshot(client)).toBe(before);
  return text;
}

describe('example plans', () => {
  it('widen-orders-id: like source + alter, two-way, deferred indexes and constraints', async () => {
    const plan = await loadPlanFile('plans/widen-orders-id.yaml');
    const before = await catalogSnapshot(client);
    const resolved = await resolvePlan(plan, client, { fileName: 'widen-orders-id.yaml' });
    expect(await catalogSnapshot(client)).toBe(before);
    expect(resolved.readsOnly).toBe(false);
    expect(resolved.change.source).toEqual({ schema: 'public', table: 'orders' });
    expect(resolved.change.target).toEqual({ schema: 'public', table: 'orders_v2' });
    expect(resolved.change.sourceKey).toEqual(['id']);
    expect(resolved.change.up).toContainEqual({ column: 'id', expression: 'id::bigint' });
    expect(resolved.change.up).toContainEqual({ column: 'total', expression: '"total"' });
    expect(resolved.change.down).toContainEqual({ column: 'id', expression: 'id::integer' });
    // LIKE … INCLUDING ALL copies CHECK constraints and indexes, never foreign keys.
    expect(resolved.deferred.map((d) => d.kind).sort()).toEqual(['check', 'index', 'index']);
    expect(resolved.stages.map((s) => s.name)).toEqual([
      'prepare',
      'validate',
      'approve-shift',
      'shift',
      'swap',
      'approve-cleanup',
      'cleanup',
    ]);
    expect(resolved.stages[1]!.steps.map((s) => s.kind)).toEqual(['verify', 'sqlcheck']);
    expect(resolved.stages[3]!.steps.filter((s) => s.kind === 'route')).toHaveLength(3);
    // Workflow input: plain JSON, no connection URL.
    expect(JSON.parse(JSON.stringify(resolved))).toEqual(resolved);
    expect(JSON.stringify(resolved)).not.toMatch(/postgres(ql)?:\/\//);
  });

  it('rename-posts-articles: ddl with an index, both directions by name', async () => {
    const resolved = await resolvePlan(
      await loadPlanFile('plans/rename-posts-articles.yaml'),
      client,
    );
    expect(resolved.readsOnly).toBe(false);
    expect(resolved.change.target.table).toBe('articles');
    expect(resolved.change.down!.map((m) => m.column).sort()).toEqual([
      'author_id',
      'body',
      'id',
      'published_at',
      'title',
    ]);
    expect(resolved.deferred).toEqual([
      expect.objectContaining({ kind: 'index', name: 'articles_author_idx' }),
    ]);
    const shift = resolved.stages.find((s) => s.name === 'shift')!.steps;
    expect(shift.map((s) => (s.kind === 'route' ? s.percent : s.kind))).toEqual([
      10,
      'monitor',
      50,
      'monitor',
      100,
      'monitor',
    ]);
  });

  it('split-name: name → first_name, last_name and back', async () => {
    const resolved = await resolvePlan(await loadPlanFile('plans/split-name.yaml'), client);
    expect(resolved.change.up.find((m) => m.column === 'first_name')!.expression).toBe(
      "split_part(name, ' ', 1)",
    );
    expect(resolved.change.down!.find((m) => m.column === 'name')!.expression).toContain('||');
    expect(resolved.deferred).toEqual([
      expect.objectContaining({ kind: 'unique', name: 'customers_v2_email_key' }),
    ]);
    expect(resolved.shift.steps).toEqual([
      { percent: 10, monitorSeconds: 600 },
      { percent: 50, monitorSeconds: 1800 },
      { percent: 100, monitorSeconds: 1800 },
    ]);
  });

  it('a plan without mapping.down is reads-only', async () => {
    const resolved = await resolvePlan(parsePlan(base.replace(/ {2}down: .*\n/, '')), client);
    expect(resolved.readsOnly).toBe(true);
    expect(resolved.change.down).toBeUndefined();
  });

  it('composite keys resolve in key order', async () => {
    const resolved = await resolvePlan(
      parsePlan(`
name: c2
source: composite
target: { table: composite_v2, like: source }
mapping: { down: {} }
`),
      client,
    );
    expect(resolved.change.sourceKey).toEqual(['tenant', 'seq']);
    expect(resolved.change.targetKey).toEqual(['tenant', 'seq']);
  });
});

describe('bad plans fail with a message and change nothing', () => {
  const cases: Array<[string, string, RegExp]> = [
    [
      'missing table',
      base.replace('public.orders', 'public.nope'),
      /bad\.yaml: source: table public\.nope does not exist/,
    ],
    [
      'no unique key',
      `name: x\nsource: nokey\ntarget: { table: nokey2, like: source }\n`,
      /key: public\.nokey has no primary key: set key/,
    ],
    [
      'key without unique index',
      `name: x\nsource: nokey\nkey: [a]\ntarget: { table: nokey2, like: source }\n`,
      /key: no primary key or unique index of public\.nokey is on exactly \(a\)/,
    ],
    [
      'nullable key',
      `name: x\nsource: nullable_key\nkey: email\ntarget: { table: nk2, like: source }\n`,
      /key: key column "email" of public\.nullable_key is nullable/,
    ],
    [
      'syntax error in an expression',
      base.replace('id: id::bigint', 'total: "total +"'),
      /mapping\.up\.total: expression not a valid SQL expression/,
    ],
    [
      'empty expression',
      base.replace('id: id::bigint', 'total: ""'),
      /mapping\.up\.total: expression must be a non-empty string/,
    ],
    [
      'expression referring to a missing column',
      base.replace('id: id::bigint', 'total: nosuch * 2'),
      /mapping\.up\.total: expression does not compile against public\.orders: column "nosuch" does not exist/,
    ],
    [
      'expression of the wrong type',
      base.replace('id: id::bigint', 'created_at: total'),
      /mapping\.up\.created_at: expression does not compile.*column "created_at" is of type timestamp with time zone but expression is of type numeric/,
    ],
    [
      'expression smuggling a statement',
      base.replace('id: id::bigint', 'total: "1); DROP TABLE orders; SELECT (1"'),
      /mapping\.up\.total: expression must be one SQL expression, not statements/,
    ],
    [
      'expression ending in a line comment',
      base.replace('id: id::bigint', 'total: "total -- cents"'),
      /mapping\.up\.total: expression not a valid SQL expression/,
    ],
    [
      'expression smuggling a clause',
      base.replace('id: id::bigint', 'total: "1) FROM pg_class WHERE (true"'),
      /mapping\.up\.total: expression must be a single SQL expression \(no FROM/,
    ],
    [
      'unsafe table name with quotes and a semicolon',
      base.replace('public.orders', "'public.orders\"; DROP TABLE orders; --'"),
      /source: "public\.orders\\"; DROP TABLE orders; --" is not a safe table name/,
    ],
    [
      'unsafe column name in a mapping',
      base.replace('id: id::bigint', '"to\\"tal": total'),
      /mapping\.up\.to"tal: column name "to\\"tal" is not a safe identifier/,
    ],
    [
      'plan name with a space',
      base.replace('name: widen_orders_id', 'name: widen orders'),
      /name: "widen orders" is not a safe identifier/,
    ],
    [
      'missing down while shifting writes',
      base.replace(/ {2}down: .*\n/, '') + 'shift: { readsOnly: false }\n',
      /shift\.readsOnly: writes cannot shift to the new table without mapping\.down/,
    ],
    ['bad YAML', 'name: [unclosed\nsource: x\n', /bad\.yaml: line \d+, column \d+: invalid YAML/],
    [
      'unknown field',
      base + 'targte: oops\n',
      /bad\.yaml: unknown field "targte": remove it or fix the spelling \(known fields: name, connection, source, key, target/,
    ],
    [
      'unknown nested field',
      base + 'backfill: { batchsize: 5 }\n',
      /backfill: unknown field "batchsize".*batchSize/,
    ],
    [
      'both ddl and like',
      base.replace('like: source', 'like: source\n  ddl: CREATE TABLE orders_v2 (id int)'),
      /target: give either ddl/,
    ],
    [
      'invalid target DDL',
      `name: x\nsource: posts\ntarget:\n  table: p2\n  ddl: CREATE TABLE p2 (id bigint PRIMARY KEY, x nosuchtype)\nmapping: { down: {} }\n`,
      /target\.ddl: PostgreSQL rejects the new table's DDL: type "nosuchtype" does not exist/,
    ],
    [
      'DDL that touches another table',
      `name: x\nsource: posts\ntarget:\n  table: p2\n  ddl: CREATE TABLE p2 (id bigint PRIMARY KEY); DROP TABLE posts\n`,
      /target\.ddl: statement 2: only CREATE INDEX … ON <target> and ALTER TABLE <target> … are allowed here, found Drop/,
    ],
    [
      'alter of another table',
      base.replace('ALTER TABLE orders_v2', 'ALTER TABLE orders'),
      /target\.alter\[0\]: acts on "orders", not on the target table "public\.orders_v2"/,
    ],
    [
      'target column with nothing to fill it',
      `name: x\nsource: posts\ntarget:\n  table: p2\n  ddl: CREATE TABLE p2 (id bigint PRIMARY KEY, author_id bigint, title text, body text, published_at timestamptz, extra int NOT NULL)\n`,
      /mapping\.up\.extra: target column "extra" has no mapping, no same-named source column and no default/,
    ],
    [
      'new table without a key',
      `name: x\nsource: posts\ntarget:\n  table: p2\n  ddl: CREATE TABLE p2 (id bigint, author_id bigint, title text, body text, published_at timestamptz)\n`,
      /target\.ddl: the new table has no primary key or unique index on exactly \(id\)/,
    ],
    [
      'key computed from other columns',
      base.replace('id: id::bigint', 'id: customer_id::bigint'),
      /mapping\.up\.id: key column "id" must be computed from "id" alone/,
    ],
    [
      'target that already exists',
      base
        .replace('table: orders_v2', 'table: customers')
        .replace(/ALTER TABLE orders_v2/, 'ALTER TABLE customers'),
      /target\.table: public\.customers already exists/,
    ],
    [
      'stages out of order',
      base +
        'stages:\n  - name: all\n    steps: [{kind: shadow}, {kind: backfill}, {kind: sync}]\n',
      /stages: a "sync" step must come before "backfill"/,
    ],
    [
      'bad step kind',
      base + 'stages:\n  - name: all\n    steps: [{kind: teleport}]\n',
      /stages\[0\]\.steps\[0\]\.kind: kind must be one of backup, shadow/,
    ],
    [
      'sql check that does not compile',
      base + 'verify:\n  sqlChecks: [{ name: n, sql: SELECT count(*) FROM nosuch, expect: 0 }]\n',
      /verify\.sqlChecks\[0\]\.sql: does not compile: relation "nosuch" does not exist/,
    ],
  ];
  it.each(cases)('%s', async (_name, yaml, message) => {
    expect(await problemsOf(yaml)).toMatch(message);
  });

  it('resolvePlan throws a PlanError listing every problem', async () => {
    const plan = parsePlan(base.replace('id: id::bigint', 'total: nosuch, note: alsonot'));
    const err = await resolvePlan(plan, client, { fileName: 'p.yaml' }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(PlanError);
    expect((err as PlanError).problems.map((p) => p.path).sort()).toEqual([
      'mapping.up.note',
      'mapping.up.total',
    ]);
    expect((err as Error).message.split('\n')[0]).toMatch(/^p\.yaml: mapping\.up\./);
  });
});

describe('stages', () => {
  it('custom stages get ids, gates and default checks', async () => {
    const plan = parsePlan(
      base +
        `verify:
  sqlChecks: [{ name: none negative, sql: SELECT count(*) FROM orders_v2 WHERE total < 0, expect: 0 }]
stages:
  - name: prepare
    steps: [{kind: shadow}, {kind: sync}, {kind: backfill}, {kind: hook, name: smoke, run: {command: [npm, test]}}]
  - name: check
    steps: [{kind: verify}, {kind: sqlcheck}, {kind: approval}]
  - name: go
    steps: [{kind: route, percent: 100}, {kind: monitor, seconds: 60}]
`,
    );
    const resolved = await resolvePlan(plan, client);
    const steps = resolved.stages.flatMap((s) => s.steps);
    expect(steps.map((s) => s.id)).toEqual([
      'prepare.shadow',
      'prepare.sync',
      'prepare.backfill',
      'prepare.smoke',
      'check.verify',
      'check.sqlcheck',
      'check.approval',
      'go.route',
      'go.monitor',
    ]);
    expect(steps[3]).toEqual({
      kind: 'hook',
      id: 'prepare.smoke',
      name: 'smoke',
      hook: { kind: 'command', command: ['npm', 'test'], timeoutMs: 600_000 },
    });
    expect(steps[5]).toMatchObject({ kind: 'sqlcheck', checks: [{ name: 'none negative' }] });
    expect(steps[6]).toMatchObject({ kind: 'approval', gate: 'check' });
  });
});
