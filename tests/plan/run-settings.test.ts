/**
 * The plan's run behaviour: monitoring checks (monitor checkSchema shape), hook steps (hook
 * activity shape), approval `auto`, and the `run:` section that becomes the workflow's settings.
 */
import { readdirSync, readFileSync } from 'node:fs';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hookSchema } from '../../src/steps/hook/action';
import { checkSchema } from '../../src/monitor/checks';
import { catalogSnapshot } from '../../src/plan/catalog';
import {
  checkPlan,
  loadPlanFile,
  parsePlan,
  PlanError,
  resolvePlan,
  resolveRunnablePlan,
  type ResolvedStep,
  type RunnablePlan,
} from '../../src/plan/index';
import { planSchema, runSchema, stepSchema } from '../../src/plan/schema';
import { offlineProblems } from '../../src/plan/stages';
import type { RunSettings } from '../../src/plan/run-settings';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { exampleSchema } from './fixtures';

let db: TestDatabase;
let client: pg.PoolClient;

// The example plans name secrets (hook and router headers) that the plan check requires to be
// set, as a worker must have them: these tests run with stand-in values.
process.env.DEPLOY_TOKEN ??= 'test-deploy-token';
process.env.LB_TOKEN ??= 'test-lb-token';

beforeAll(async () => {
  db = await createTestDatabase('planrun');
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

/** A custom stage list whose last stage holds `extra` steps (a YAML flow list's items). */
const withSteps = (extra: string) =>
  base +
  `stages:
  - name: prepare
    steps: [{kind: shadow}, {kind: sync}, {kind: backfill}, {kind: verify}]
  - name: go
    steps: [${extra}]
`;

/** Error text of a plan that fails to parse or check; asserts the database is unchanged. */
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

const stepsOf = (p: RunnablePlan): ResolvedStep[] => p.stages.flatMap((s) => s.steps);

describe('bad run settings, checks and hooks name the field', () => {
  const cases: Array<[string, string, RegExp]> = [
    [
      'bad comparison operator',
      base + `shift:\n  checks: [{ kind: sql, query: SELECT 1, op: "~", threshold: 0 }]\n`,
      /bad\.yaml: shift\.checks\[0\]\.op: op must be one of < <= > >= = !=/,
    ],
    [
      'missing threshold',
      base + `shift:\n  checks: [{ kind: sql, query: SELECT 1, op: "<" }]\n`,
      /shift\.checks\[0\]\.threshold: is required \(a number\)/,
    ],
    [
      'health check with a bad URL',
      base + `run:\n  monitor:\n    checks: [{ kind: http, url: "ftp://app/health" }]\n`,
      /run\.monitor\.checks\[0\]\.url: must be an http:\/\/ or https:\/\/ URL/,
    ],
    [
      'check without a kind',
      base + `run:\n  monitor:\n    checks: [{ url: "http://app/health" }]\n`,
      /run\.monitor\.checks\[0\]\.kind: a check needs kind: http .*, sql .* or prometheus/,
    ],
    [
      'the old {name, sql, expect} shape in a monitoring check',
      base + `shift:\n  checks: [{ name: n, sql: SELECT 1, expect: 0 }]\n`,
      /shift\.checks\[0\]\.kind: a check needs kind/,
    ],
    [
      'monitoring query that writes',
      withSteps(
        `{kind: monitor, seconds: 5, checks: [{kind: sql, query: "DELETE FROM orders", op: "=", threshold: 0}]}`,
      ),
      /stages\[1\]\.steps\[0\]\.checks\[0\]\.query: must be a SELECT statement/,
    ],
    [
      'monitoring query that does not compile',
      base +
        `run:\n  monitor:\n    checks: [{ kind: sql, query: SELECT count(*) FROM nosuch, op: "=", threshold: 0 }]\n`,
      /run\.monitor\.checks\[0\]\.query: does not compile: relation "nosuch" does not exist/,
    ],
    [
      'monitoring check on a connection that is not configured',
      base +
        `shift:\n  checks: [{ kind: sql, connection: nowhere, query: SELECT 1, op: "=", threshold: 1 }]\n`,
      /shift\.checks\[0\]\.connection: connection "nowhere" is not configured: set CUTOVER_DB_NOWHERE_URL/,
    ],
    [
      'unknown router kind',
      base + `run:\n  router: { kind: nginx }\n`,
      /run\.router\.kind: router kind must be postgres .*, webhook .* or command/,
    ],
    [
      'webhook router with a bad URL',
      base + `run:\n  router: { kind: webhook, url: lb.internal }\n`,
      /run\.router\.url: must be an http:\/\/ or https:\/\/ URL/,
    ],
    [
      'bad onBreach and interval',
      base + `run:\n  monitor: { onBreach: ignore, intervalSeconds: 0 }\n`,
      /run\.monitor\.intervalSeconds: must be at least 1[\s\S]*run\.monitor\.onBreach: must be rollback or pause/,
    ],
    [
      'negative rollback window',
      base + `run: { rollbackWindowSeconds: -1 }\n`,
      /run\.rollbackWindowSeconds: must be at least 0/,
    ],
    [
      'unknown field under run',
      base + `run: { rollbackWindow: 60 }\n`,
      /run: unknown field "rollbackWindow".*known fields: router, monitor, rollbackWindowSeconds, keepShadowOnAbort, autoApprove/,
    ],
    [
      'hook without command or url',
      withSteps(`{kind: hook, run: {timeoutMs: 1000}}`),
      /stages\[1\]\.steps\[0\]\.run: give exactly one of command .* or url/,
    ],
    [
      'hook with both command and url',
      withSteps(`{kind: hook, run: {command: ./x, url: "http://a"}}`),
      /stages\[1\]\.steps\[0\]\.run: give exactly one of command/,
    ],
    [
      'hook without run',
      withSteps(`{kind: hook, name: deploy}`),
      /stages\[1\]\.steps\[0\]\.run: is required: give exactly one of command/,
    ],
    [
      'hook in the old flat shape',
      withSteps(`{kind: hook, command: [npm, test]}`),
      /stages\[1\]\.steps\[0\]: unknown field "command".*known fields: kind, name, run, undo/,
    ],
    [
      'hook action with a misspelt field',
      withSteps(`{kind: hook, run: {command: ./x, timeout: 5}}`),
      /stages\[1\]\.steps\[0\]\.run: unknown field "timeout".*known fields: kind, command, timeoutMs, env, cwd/,
    ],
    [
      'hook URL that is not http',
      withSteps(`{kind: hook, run: {url: "file:///etc/passwd"}}`),
      /stages\[1\]\.steps\[0\]\.run\.url: must be an http:\/\/ or https:\/\/ URL/,
    ],
    [
      'hook undo with a bad method',
      withSteps(`{kind: hook, run: {command: ./x}, undo: {url: "http://a", method: TRACE}}`),
      /stages\[1\]\.steps\[0\]\.undo\.method: must be one of "GET", "POST", "PUT", "PATCH", "DELETE"/,
    ],
    [
      'empty hook command',
      withSteps(`{kind: hook, run: {command: "  "}}`),
      /stages\[1\]\.steps\[0\]\.run\.command: command must not be empty/,
    ],
    [
      'approval auto that is not a boolean',
      withSteps(`{kind: approval, auto: sometimes}`),
      /stages\[1\]\.steps\[0\]\.auto: must be true or false/,
    ],
    [
      'auto-approving a gate that does not exist',
      base + `run: { autoApprove: [shift, clenaup] }\n`,
      /run\.autoApprove\[1\]: no approval gate is named "clenaup" \(gates: shift, cleanup\)/,
    ],
  ];
  it.each(cases)('%s', async (_name, yaml, message) => {
    expect(await problemsOf(yaml)).toMatch(message);
  });
});

describe('defaults and the resolved plan', () => {
  it('a plan without run: gets the workflow defaults, no router and human gates', async () => {
    const resolved = await resolvePlan(parsePlan(base), client);
    const settings = resolved.settings!;
    expect(settings).toEqual({
      checkIntervalSeconds: 30,
      onBreach: 'rollback',
      monitorChecks: [],
      rollbackWindowSeconds: 86_400,
      keepShadowOnAbort: false,
    });
    // Type-level: the settings are the workflow's RunSettings (a Partial of them).
    const asRun: Partial<RunSettings> = settings;
    expect(asRun.router).toBeUndefined();
    const gates = stepsOf(resolved).filter((s) => s.kind === 'approval');
    expect(gates.map((g) => [g.gate, g.auto])).toEqual([
      ['shift', false],
      ['cleanup', false],
    ]);
  });

  it('run: maps onto RunSettings; checks get defaults and the plan connection', async () => {
    const resolved = await resolvePlan(
      parsePlan(
        base +
          `shift:
  steps: [50, 100]
  checks: [{ kind: sql, query: SELECT count(*) FROM orders_v2, op: ">=", threshold: 0 }]
run:
  router: { kind: command, command: ./set-weight.sh }
  monitor:
    intervalSeconds: 5
    onBreach: pause
    checks:
      - { kind: http, name: health, url: "http://app:8080/healthz", expectStatus: [200, 204] }
      - { kind: prometheus, url: "http://prom:9090", query: up, op: "=", threshold: 1 }
  rollbackWindowSeconds: 0
  keepShadowOnAbort: true
  autoApprove: [cleanup]
`,
      ),
      client,
    );
    expect(resolved.settings).toEqual({
      checkIntervalSeconds: 5,
      onBreach: 'pause',
      rollbackWindowSeconds: 0,
      keepShadowOnAbort: true,
      router: { kind: 'command', command: './set-weight.sh', timeoutMs: 60_000 },
      monitorChecks: [
        {
          kind: 'http',
          name: 'health',
          url: 'http://app:8080/healthz',
          method: 'GET',
          expectStatus: [200, 204],
          timeoutMs: 5000,
        },
        {
          kind: 'prometheus',
          url: 'http://prom:9090',
          query: 'up',
          op: '=',
          threshold: 1,
          timeoutMs: 5000,
        },
      ],
    });
    const sqlCheck = {
      kind: 'sql',
      query: 'SELECT count(*) FROM orders_v2',
      op: '>=',
      threshold: 0,
      timeoutMs: 5000,
      connection: 'default',
    };
    expect(resolved.shift.checks).toEqual([sqlCheck]);
    const monitors = stepsOf(resolved).filter((s) => s.kind === 'monitor');
    expect(monitors.map((m) => m.checks)).toEqual([[sqlCheck], [sqlCheck]]);
    // Exactly what the monitorChecks activity accepts.
    for (const c of [...resolved.settings!.monitorChecks, sqlCheck])
      expect(checkSchema.safeParse(c).success).toBe(true);
    const gates = stepsOf(resolved).filter((s) => s.kind === 'approval');
    expect(gates.map((g) => [g.gate, g.auto])).toEqual([
      ['shift', false],
      ['cleanup', true],
    ]);
  });

  it('autoApprove: all marks every gate auto; a step may say auto: true itself', async () => {
    const all = await resolvePlan(parsePlan(base + 'run: { autoApprove: all }\n'), client);
    expect(stepsOf(all).filter((s) => s.kind === 'approval' && s.auto)).toHaveLength(2);
    const own = await resolvePlan(
      parsePlan(withSteps('{kind: approval, gate: go, auto: true}, {kind: route, percent: 100}')),
      client,
    );
    expect(stepsOf(own).find((s) => s.kind === 'approval')).toEqual({
      kind: 'approval',
      id: 'go.approval',
      gate: 'go',
      auto: true,
    });
  });

  it('a check on another configured connection keeps its name and is not compiled here', async () => {
    process.env.CUTOVER_DB_REPORTING_URL = db.url;
    try {
      const resolved = await resolvePlan(
        parsePlan(
          base +
            `run:\n  monitor:\n    checks: [{ kind: sql, connection: reporting, query: SELECT 1 FROM only_in_reporting, op: "=", threshold: 1 }]\n`,
        ),
        client,
      );
      expect(resolved.settings!.monitorChecks[0]).toMatchObject({ connection: 'reporting' });
      expect(JSON.stringify(resolved)).not.toMatch(/postgres(ql)?:\/\//);
    } finally {
      delete process.env.CUTOVER_DB_REPORTING_URL;
    }
  });

  it('an sql check without a connection uses the plan connection, not "default"', () => {
    const plan = parsePlan(
      base.replace('name: widen_orders_id', 'name: w\nconnection: reporting') +
        `stages:
  - name: all
    steps:
      - {kind: shadow}
      - {kind: sync}
      - {kind: backfill}
      - {kind: monitor, seconds: 1, checks: [{kind: sql, query: SELECT 1, op: "=", threshold: 1}]}
`,
    );
    const monitor = offlineProblems(plan).stages[0]!.steps[3]!;
    expect(monitor.kind === 'monitor' && monitor.checks).toEqual([
      {
        kind: 'sql',
        query: 'SELECT 1',
        op: '=',
        threshold: 1,
        timeoutMs: 5000,
        connection: 'reporting',
      },
    ]);
  });

  it('hook steps resolve to the hook activity config: run action with undo inside', async () => {
    const resolved = await resolvePlan(
      parsePlan(
        withSteps(
          `{kind: hook, name: deploy, run: {command: "./deploy.sh v2", env: {STAGE: prod}}, undo: {url: "https://deploy.example/api", body: {v: 1}}},
           {kind: hook, run: {kind: http, url: "http://ci/run", method: GET, expectStatus: 204, timeoutMs: 1000}}`,
        ),
      ),
      client,
    );
    const hooks = stepsOf(resolved).filter((s) => s.kind === 'hook');
    expect(hooks).toEqual([
      {
        kind: 'hook',
        id: 'go.deploy',
        name: 'deploy',
        hook: {
          kind: 'command',
          command: './deploy.sh v2',
          env: { STAGE: 'prod' },
          timeoutMs: 600_000,
          undo: {
            kind: 'http',
            url: 'https://deploy.example/api',
            method: 'POST',
            body: { v: 1 },
            timeoutMs: 60_000,
          },
        },
      },
      {
        kind: 'hook',
        id: 'go.hook',
        hook: {
          kind: 'http',
          url: 'http://ci/run',
          method: 'GET',
          expectStatus: 204,
          timeoutMs: 1000,
        },
      },
    ]);
    // Exactly what hookRun / hookUndo accept.
    for (const h of hooks) expect(hookSchema.parse(h.hook)).toEqual(h.hook);
  });
});

describe('example plans', () => {
  const files = readdirSync('plans').filter((f) => f.endsWith('.yaml'));

  it.each(files)('%s passes check and its settings are valid workflow input', async (file) => {
    // An expand/contract plan (no source / target) among them, too.
    const resolved = await resolveRunnablePlan(await loadPlanFile(`plans/${file}`), client, {
      fileName: file,
    });
    for (const c of resolved.settings!.monitorChecks)
      expect(checkSchema.safeParse(c).success).toBe(true);
    for (const s of stepsOf(resolved)) {
      if (s.kind === 'hook') expect(hookSchema.safeParse(s.hook).success).toBe(true);
      if (s.kind === 'monitor')
        for (const c of s.checks ?? []) expect(checkSchema.safeParse(c).success).toBe(true);
    }
    expect(JSON.parse(JSON.stringify(resolved))).toEqual(resolved);
  });

  it('split-name shows an SQL threshold check and an HTTP health check', async () => {
    const resolved = await resolvePlan(await loadPlanFile('plans/split-name.yaml'), client);
    expect(resolved.settings!.monitorChecks.map((c) => c.kind).sort()).toEqual(['http', 'sql']);
    expect(resolved.settings!.monitorChecks.find((c) => c.kind === 'sql')).toMatchObject({
      connection: 'default',
      op: '=',
      threshold: 0,
    });
  });

  it('rename-posts-articles shows hooks with an undo, a webhook router and a Prometheus check', async () => {
    const resolved = await resolvePlan(
      await loadPlanFile('plans/rename-posts-articles.yaml'),
      client,
    );
    expect(resolved.settings!.router).toMatchObject({ kind: 'webhook' });
    expect(resolved.settings!.onBreach).toBe('pause');
    const hooks = stepsOf(resolved).filter((s) => s.kind === 'hook');
    expect(hooks.map((h) => h.hook.kind)).toEqual(['command', 'http']);
    expect(hooks[1]!.hook.undo).toMatchObject({ kind: 'http' });
    expect(
      stepsOf(resolved).some(
        (s) => s.kind === 'monitor' && s.checks?.some((c) => c.kind === 'prometheus'),
      ),
    ).toBe(true);
  });
});

describe('docs/plans.md keeps up with the schema', () => {
  const doc = readFileSync('docs/plans.md', 'utf8');
  const keysOf = (schema: unknown): string[] => {
    let s = schema as { _zod: { def: { innerType?: unknown; shape?: object } } };
    while (s._zod.def.innerType) s = s._zod.def.innerType as typeof s;
    return Object.keys(s._zod.def.shape!);
  };

  it.each(keysOf(planSchema))('top-level field %s is documented', (key) => {
    expect(doc).toMatch(new RegExp('\\| `' + key + '` '));
  });

  it.each(keysOf(runSchema))('run field %s is documented', (key) => {
    expect(doc).toMatch(new RegExp('`' + key + '(\\.|`)'));
  });

  const kinds = (
    stepSchema as unknown as { _zod: { def: { options: unknown[] } } }
  )._zod.def.options.map(
    (o) =>
      (o as { _zod: { def: { shape: { kind: { _zod: { def: { values: string[] } } } } } } })._zod
        .def.shape.kind._zod.def.values[0]!,
  );
  it.each(kinds)('step kind %s is documented', (kind) => {
    expect(doc).toMatch(new RegExp('\\| `' + kind + '` +\\|'));
  });

  it('the run: and hook examples in the reference are valid and compile', async () => {
    const run = /```yaml\n(run:\n[\s\S]*?)```/.exec(doc)![1]!;
    const hook = /```yaml\n(- kind: hook\n[\s\S]*?)```/.exec(doc)![1]!;
    const stages = `stages:
  - name: all
    steps:
      - {kind: shadow}
      - {kind: sync}
      - {kind: backfill}
      - {kind: verify}
${hook.replace(/^/gm, '      ')}
      - {kind: approval, gate: shift}
`;
    const resolved = await resolvePlan(parsePlan(base + run + stages, 'docs.yaml'), client);
    expect(resolved.settings!.monitorChecks).toHaveLength(2);
    expect(stepsOf(resolved).find((s) => s.kind === 'hook')).toMatchObject({
      hook: { kind: 'command', undo: { kind: 'http' } },
    });
  });

  it.each(['sql', 'http', 'prometheus'])('check kind %s is documented', (kind) => {
    expect(doc).toContain('`kind: ' + kind + '`');
  });
});
