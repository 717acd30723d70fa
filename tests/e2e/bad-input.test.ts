/**
 * Bad input through the real CLI against a real dev server: each case fails with exit 1 (2 for
 * usage), one clear line and no stack, and changes nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/db/local-cluster';
import {
  noWorkflow,
  seedOrders,
  startE2E,
  tableExists,
  userTriggers,
  waitFor,
  widenPlanYaml,
  type E2E,
} from './support';
import type { CliResult } from '../support/cli';

const PLAN = 'e2e_bad_input';
let e2e: E2E;

beforeAll(async () => {
  e2e = await startE2E('e2ebad');
  await seedOrders(e2e.db, 500);
});
afterAll(async () => {
  await e2e?.stop();
});

/** Exit code and a single `error: …` line on stderr, without a stack trace. */
function expectOneLineError(r: CliResult, code: number, message: RegExp): void {
  expect(r.code, r.stderr).toBe(code);
  const lines = r.stderr.trimEnd().split('\n');
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^error: /);
  expect(lines[0]).toMatch(message);
  expect(r.stderr).not.toMatch(/^\s+at /m);
}

const goodPlanYaml = widenPlanYaml(
  PLAN,
  `shift:
  steps:
    - { percent: 10, monitorSeconds: 120 }
    - { percent: 100, monitorSeconds: 1 }
`,
);

describe('bad input via the CLI', () => {
  it('an unknown run: status, approve and abort say so and exit 1', async () => {
    for (const args of [
      ['status', 'no_such_plan'],
      ['approve', 'no_such_plan'],
      ['abort', 'no_such_plan', '--reason', 'test'],
      ['pause', 'cutover-no_such_plan'],
    ]) {
      expectOneLineError(
        await e2e.cli(args),
        1,
        /no cutover run "(cutover-)?no_such_plan" \(workflow id cutover-no_such_plan\)/,
      );
    }
  });

  it('a plan that fails `plan check` is refused before anything changes or starts', async () => {
    const file = e2e.writePlan(
      'bad_plan',
      widenPlanYaml('e2e_bad_plan', '').replace('source: public.orders', 'source: public.nothing'),
    );
    const r = await e2e.cli(['start', file, '--auto-approve', 'all']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error: plan .*bad_plan\.yaml cannot start:/);
    expect(r.stderr).toMatch(/public\.nothing/);
    expect(r.stderr).not.toMatch(/^\s+at /m);
    expect(r.stdout).toBe('');
    expect(await noWorkflow(e2e, 'e2e_bad_plan')).toBe(true);
    expect(await tableExists(e2e.db, 'public.orders_v2')).toBe(false);
    expect(await tableExists(e2e.db, 'cutover.routes')).toBe(false);
    expect(await userTriggers(e2e.db)).toBe(0);
  });

  it('no Temporal server: one clear line and a non-zero exit, for the client and the worker', async () => {
    const closed = `127.0.0.1:${await freePort()}`;
    const planFile = e2e.writePlan(PLAN, goodPlanYaml);
    const commands = [['status', PLAN], ['list'], ['start', planFile], ['worker']];
    const results = await Promise.all(
      commands.map((args) => e2e.cli(args, { TEMPORAL_ADDRESS: closed })),
    );
    for (const r of results)
      expectOneLineError(
        r,
        1,
        new RegExp(`cannot reach Temporal at ${closed.replace(/\./g, '\\.')}`),
      );
    expect(await noWorkflow(e2e, PLAN)).toBe(true);
  });

  it('gates: approving one that is not waiting names the waiting ones; a second start is refused', async () => {
    const planFile = e2e.writePlan(PLAN, goodPlanYaml);
    await e2e.startWorker();
    const started = await e2e.cli(['start', planFile, '--rollback-window', '0s']);
    expect(started.code, started.stderr).toBe(0);

    await waitFor(
      'the shift gate',
      async () => (await e2e.status(PLAN)).waitingGates.includes('shift'),
      90_000,
    );
    expectOneLineError(
      await e2e.cli(['approve', PLAN, 'cleanup']),
      1,
      /gate "cleanup" is not waiting \(waiting: shift\)/,
    );
    expect((await e2e.status(PLAN)).waitingGates).toEqual(['shift']);

    const again = await e2e.cli(['start', planFile, '--auto-approve', 'all']);
    expectOneLineError(again, 1, new RegExp(`plan ${PLAN} already has an open run`));
    const runs = await e2e.cli(['list', '--json']);
    expect(runs.code).toBe(0);
    expect(
      (JSON.parse(runs.stdout) as Array<{ workflowId: string }>).filter(
        (r) => r.workflowId === `cutover-${PLAN}`,
      ),
    ).toHaveLength(1);

    const throttled = await e2e.cli(['throttle', PLAN, '--sleep', '20m']);
    expectOneLineError(throttled, 2, /sleepMs must be a whole number from 0 to 600000/);

    const ok = await e2e.cli(['approve', PLAN]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toContain('approved gate shift');
    await waitFor(
      'the first monitoring window',
      async () => (await e2e.status(PLAN)).step === 'shift.monitor',
    );
    expectOneLineError(
      await e2e.cli(['approve', PLAN, 'shift']),
      1,
      /gate "shift" is not waiting \(no gate is waiting now\)/,
    );

    // Leave nothing behind: abort and wait for the rollback.
    expect((await e2e.cli(['abort', PLAN, '--reason', 'test over'])).code).toBe(0);
    const result = await waitFor(
      'the rollback',
      async () =>
        (await e2e.handle(PLAN).describe()).status.name === 'RUNNING'
          ? undefined
          : e2e.handle(PLAN).result(),
      60_000,
    );
    expect(result.outcome).toBe('rolled-back');
    expect(await tableExists(e2e.db, 'public.orders_v2')).toBe(false);
  });

  // Many CLI round trips and a whole prepare stage: generous, so a loaded machine does not fail it.
  it(
    'a closed run: no waiting gates, messages name the run and its outcome, no secret kept',
    { timeout: 900_000 },
    async () => {
      const plan = 'e2e_closed_run';
      const secret = 'Sup3rSecretPw';
      const planFile = e2e.writePlan(
        plan,
        widenPlanYaml(plan, 'shift:\n  steps:\n    - { percent: 100, monitorSeconds: 1 }\n'),
      );
      const orders = async () =>
        (
          await e2e.db.pool.query(
            `SELECT md5(string_agg(o::text, ',' ORDER BY id)) AS h FROM orders o`,
          )
        ).rows[0].h as string;
      const before = await orders();
      await e2e.startWorker();
      const started = await e2e.cli(['start', planFile, '--rollback-window', '0s']);
      expect(started.code, started.stderr).toBe(0);
      await waitFor(
        'the shift gate',
        async () => (await e2e.status(plan)).waitingGates.includes('shift'),
        90_000,
      );
      const aborted = await e2e.cli([
        'abort',
        plan,
        '--reason',
        `wrong target, see postgres://app:${secret}@db/app`,
      ]);
      expect(aborted.code, aborted.stderr).toBe(0);
      await waitFor(
        'the rollback',
        async () => (await e2e.handle(plan).describe()).status.name !== 'RUNNING',
        60_000,
      );

      // The status of a closed run lists no waiting gate, and the reason is stored masked.
      expect((await e2e.status(plan)).waitingGates).toEqual([]);
      const status = await e2e.cli(['status', plan]);
      expect(status.code, status.stderr).toBe(0);
      expect(status.stdout).not.toMatch(/waiting gate/);
      expect(status.stdout + status.stderr).not.toContain(secret);
      const history = JSON.stringify(await e2e.handle(plan).fetchHistory());
      expect(history).not.toContain(secret);

      for (const [args, verb] of [
        [['abort', plan, '--reason', 'again'], 'abort'],
        [['resume', plan], 'resume'],
      ] as const) {
        const r = await e2e.cli([...args]);
        expect(r.code, r.stderr).toBe(1);
        expect(r.stderr.split('\n')[0]).toBe(
          `error: run cutover-${plan} already completed (rolled-back: aborted: wrong target, see postgres://app:***@db/app); nothing to ${verb}`,
        );
        expect(r.stderr).not.toContain(secret);
      }
      // Nothing left behind and the data as it was.
      expect(await tableExists(e2e.db, 'public.orders_v2')).toBe(false);
      expect(await userTriggers(e2e.db)).toBe(0);
      expect(await orders()).toBe(before);
    },
  );
});
