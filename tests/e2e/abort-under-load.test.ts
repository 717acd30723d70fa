/**
 * Abort at 50% while an application writes through the router: a load generator (its own
 * process) inserts, updates and deletes orders on whichever table the router picks per key.
 * After the rollback the old table holds every write, wherever it landed, and nothing else;
 * the new table is gone and the route is back at 0%.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  fixturePath,
  routePercent,
  seedOrders,
  startE2E,
  tableExists,
  userTriggers,
  waitFor,
  widenPlanYaml,
  type E2E,
} from './support';

const PLAN = 'e2e_abort_load';
const ROWS = 5_000;
let e2e: E2E;

interface Order {
  customer: string;
  amount_cents: number;
}
interface GeneratorReport {
  ops: { old: number; new: number; failed: number };
  opsAtPercent: Record<string, { old: number; new: number }>;
  anomalies: string[];
  failures: string[];
  percent: number;
  expected: Record<string, Order | null>;
}

beforeAll(async () => {
  e2e = await startE2E('e2eabort');
  await seedOrders(e2e.db, ROWS);
});
afterAll(async () => {
  await e2e?.stop();
});

describe('abort at 50% with writes arriving through the router', () => {
  it('rolls back to the old table holding every write; the new table is gone, the route is 0', async () => {
    const planFile = e2e.writePlan(
      PLAN,
      widenPlanYaml(
        PLAN,
        `backfill:
  batchSize: 1000
shift:
  steps:
    - { percent: 10, monitorSeconds: 3 }
    - { percent: 50, monitorSeconds: 300 }
    - { percent: 100, monitorSeconds: 1 }
`,
      ),
    );
    await e2e.startWorker();

    const files = {
      OUT: join(e2e.tmp, 'generator-out.json'),
      PROGRESS: join(e2e.tmp, 'generator-progress.json'),
      STOP_FILE: join(e2e.tmp, 'generator-stop'),
    };
    const generator = e2e.spawnChild(['--import', 'tsx', fixturePath('load-generator.ts')], {
      ...files,
      MIGRATION: PLAN,
      SEED_ROWS: String(ROWS),
      MAX_MS: '100000',
      MAX_OPS: '40000',
    });
    const progress = () =>
      existsSync(files.PROGRESS)
        ? (JSON.parse(readFileSync(files.PROGRESS, 'utf8')) as Omit<GeneratorReport, 'expected'>)
        : undefined;
    await waitFor('the generator to write', async () => {
      if (generator.proc.exitCode !== null) throw new Error(generator.output());
      return (progress()?.ops.old ?? 0) > 0;
    });

    const started = await e2e.cli(['start', planFile, '--auto-approve', 'all']);
    expect(started.code).toBe(0);

    const at50 = await waitFor(
      'the route at 50% in its monitoring window',
      async () => {
        const s = await e2e.status(PLAN);
        if (s.state !== 'running') throw new Error(`run is ${s.state}: ${s.abortReason}`);
        return s.routePercent === 50 && s.step === 'shift.monitor-2' ? s : undefined;
      },
      100_000,
    );
    expect(await routePercent(e2e.db, PLAN)).toBe(50);
    // Some writes reached the new table at 50% before the abort.
    await waitFor('writes to the new table at 50%', async () => {
      if (generator.proc.exitCode !== null) throw new Error(generator.output());
      return (progress()?.opsAtPercent['50']?.new ?? 0) >= 30;
    });

    const aborted = await e2e.cli(['abort', PLAN, '--reason', 'e2e: abort at 50%']);
    expect(aborted.code).toBe(0);
    expect(aborted.stdout).toContain(`abort sent to cutover-${PLAN}`);

    const result = await waitFor(
      'the rollback to finish',
      async () => {
        const d = await e2e.handle(PLAN).describe();
        return d.status.name === 'RUNNING' ? undefined : e2e.handle(PLAN).result();
      },
      60_000,
      300,
    );
    expect(result.outcome).toBe('rolled-back');
    expect(result.reason).toBe('aborted: e2e: abort at 50%');
    expect(result.undone).toEqual(['route', 'prepare.backfill', 'prepare.sync', 'prepare.shadow']);
    expect(at50.stepsDone).toContain('validate.verify');

    // A few more writes after the rollback, all on the old table, then stop the generator.
    const opsAfter = (progress()?.ops.old ?? 0) + 20;
    await waitFor('writes after the rollback', async () => (progress()?.ops.old ?? 0) > opsAfter);
    writeFileSync(files.STOP_FILE, '');
    expect(await generator.exited).toBe(0);
    const out = JSON.parse(readFileSync(files.OUT, 'utf8')) as GeneratorReport;
    expect(out.anomalies).toEqual([]);
    expect(out.percent).toBe(0);
    expect(out.opsAtPercent['50']!.new).toBeGreaterThanOrEqual(30);

    // The old table is exactly the seed with every recorded write applied: nothing lost,
    // nothing invented.
    const model = new Map<number, Order>();
    for (let id = 1; id <= ROWS; id++)
      model.set(id, { customer: `customer-${id % 97}`, amount_cents: id * 10 });
    for (const [id, row] of Object.entries(out.expected)) {
      if (row) model.set(Number(id), row);
      else model.delete(Number(id));
    }
    const actual = new Map<number, Order>();
    for (const r of (
      await e2e.db.pool.query<{ id: number } & Order>(
        'SELECT id, customer, amount_cents FROM public.orders ORDER BY id',
      )
    ).rows)
      actual.set(r.id, { customer: r.customer, amount_cents: r.amount_cents });
    const missing = [...model.keys()].filter((id) => !actual.has(id));
    const extra = [...actual.keys()].filter((id) => !model.has(id));
    const changed = [...model].filter(
      ([id, row]) => actual.has(id) && JSON.stringify(actual.get(id)) !== JSON.stringify(row),
    );
    expect({ missing, extra, changed: changed.slice(0, 10) }).toEqual({
      missing: [],
      extra: [],
      changed: [],
    });
    expect(actual.size).toBe(model.size);

    expect(await tableExists(e2e.db, 'public.orders_v2')).toBe(false);
    expect(await routePercent(e2e.db, PLAN)).toBe(0);
    expect(await userTriggers(e2e.db)).toBe(0);

    const shown = await e2e.cli(['status', PLAN, '--json']);
    expect(shown.code).toBe(0);
    const report = JSON.parse(shown.stdout) as {
      runStatus: string;
      status: { state: string; routePercent: number; abortReason: string };
    };
    expect(report.runStatus).toBe('COMPLETED');
    expect(report.status).toMatchObject({
      state: 'rolled-back',
      routePercent: 0,
      abortReason: 'aborted: e2e: abort at 50%',
    });
  });
});
