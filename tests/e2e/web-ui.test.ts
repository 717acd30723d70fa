/**
 * What an operator sees of a run in the dev server's Web UI, driven in headless Chromium
 * (Debian's, through playwright-core): the run is found through the workflow list's search box by
 * its CutoverPlan search attribute, and its page shows the stage, the backfill's progress while
 * it copies and, at the gate, how to approve; "Request Cancellation" on the page rolls the run
 * back. The worker started with --metrics-port serves cutover's and Temporal's metrics and logs
 * JSON lines with the run's ids. Screenshots go to test-artifacts/web-ui/ (git-ignored).
 *
 * Where the page shows it: the current details (markdown) are on the "User Metadata" tab, in an
 * iframe of their own (the UI renders markdown at /render?content=…), so neither the page's DOM
 * nor its text contains them: they are read from that frame. The UI fetches them once when the
 * tab opens; the R key (the UI's own shortcut) fetches them again.
 */
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/db/local-cluster';
import { projectRoot } from '../../src/tools';
import {
  approveUpdate,
  pauseSignal,
  planSearchAttribute,
  resumeSignal,
  statusQuery,
  throttleUpdate,
} from '../../workflows/definitions';
import {
  seedOrders,
  startE2E,
  waitFor,
  widenPlanYaml,
  type ChildHandle,
  type E2E,
} from './support';

const PLAN = 'e2e_web_ui';
const WORKFLOW_ID = `cutover-${PLAN}`;
/** Another run's plan, listed in the same namespace: the search must leave it out. */
const OTHER_PLAN = 'e2e_web_ui_other';
const ROWS = 10_000;
const ARTIFACTS = join(projectRoot, 'test-artifacts', 'web-ui');
// Debian's Chromium (scripts/setup.sh installs it with apt): playwright's own browser download
// cannot work here. CUTOVER_CHROMIUM names another binary.
const CHROMIUM =
  process.env.CUTOVER_CHROMIUM ??
  ['chromium', 'chromium-headless-shell']
    .flatMap((name) => (process.env.PATH ?? '').split(delimiter).map((dir) => join(dir, name)))
    .find((file) => existsSync(file));

let e2e: E2E;
let worker: ChildHandle;
/** Everything the worker wrote (its handle keeps only the tail). */
let workerLog = '';
let metricsPort: number;
let browser: Browser;

beforeAll(async () => {
  if (!CHROMIUM)
    throw new Error(
      'no chromium or chromium-headless-shell on PATH (nor CUTOVER_CHROMIUM): scripts/setup.sh installs it',
    );
  // Only this run's screenshots, no failure shot of an earlier one.
  rmSync(ARTIFACTS, { recursive: true, force: true });
  mkdirSync(ARTIFACTS, { recursive: true });
  e2e = await startE2E('e2eweb', { ui: true });
  await seedOrders(e2e.db, ROWS);
  metricsPort = await freePort();
  worker = await e2e.startWorker([
    '--metrics-port',
    String(metricsPort),
    '--metrics-host',
    '127.0.0.1',
  ]);
  workerLog = worker.output();
  const collect = (d: Buffer) => (workerLog += d.toString());
  worker.proc.stdout?.on('data', collect);
  worker.proc.stderr?.on('data', collect);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
  });
}, 600_000);

afterAll(async () => {
  await browser?.close().catch(() => {});
  await e2e?.stop();
});

async function metrics(): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
  expect(res.status).toBe(200);
  return res.text();
}

/** The value of one sample, e.g. sample(text, 'cutover_stage', { plan, stage: 'copy' }). */
function sample(text: string, name: string, labels: Record<string, string>): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const inner = line.slice(name.length + 1, line.lastIndexOf('}'));
    if (Object.entries(labels).every(([k, v]) => inner.includes(`${k}="${v}"`)))
      return Number(line.slice(line.lastIndexOf('}') + 1).trim());
  }
  return undefined;
}

async function shoot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
}

/** The run's page, reached as an operator would: the list, searched by the plan's attribute. */
async function findRun(page: Page): Promise<void> {
  await page.goto(`${e2e.server.uiUrl}/namespaces/default/workflows`);
  const ours = page.getByRole('link', { name: WORKFLOW_ID, exact: true });
  const other = page.getByRole('link', { name: `cutover-${OTHER_PLAN}`, exact: true });
  try {
    // Unfiltered, the list holds both runs; the search must leave only ours.
    await other.waitFor({ timeout: 60_000 });
    await page.getByTestId('toggle-manual-query').click();
    await page.getByPlaceholder('Enter a query').fill(`CutoverPlan = "${PLAN}"`);
    await page.getByRole('button', { name: 'Search', exact: true }).click();
    await page.waitForURL(/[?&]query=/, { timeout: 30_000 });
    await other.waitFor({ state: 'detached', timeout: 60_000 });
    await ours.waitFor({ timeout: 60_000 });
    await shoot(page, '1-search');
    await ours.click();
    await page.waitForURL(new RegExp(`/workflows/${WORKFLOW_ID}/`), { timeout: 60_000 });
  } catch (err) {
    await shoot(page, 'search-failure');
    throw new Error(
      `${(err as Error).message}\nlist page text:\n${await page.locator('body').innerText()}`,
    );
  }
  await page.getByTestId('user-metadata-tab').click();
}

/** The current details as rendered: the text of their own frame ('' until it has loaded). */
async function currentDetails(page: Page): Promise<string> {
  return page
    .frameLocator('#user-metadata-current-details')
    .locator('body')
    .innerText({ timeout: 5_000 })
    .catch(() => '');
}

/**
 * Waits until the current details match, and returns their text. Between looks it presses R, so
 * the UI queries the workflow again; every 30 s it reloads the page, in case a fetch was lost.
 */
async function detailsShow(page: Page, what: RegExp, label: string): Promise<string> {
  let text = '';
  let pressedAt = Date.now();
  let loadedAt = Date.now();
  return waitFor(
    `the run page's current details to show ${label}`,
    async () => {
      text = await currentDetails(page);
      if (what.test(text)) return text;
      if (Date.now() - loadedAt > 30_000) {
        await page.reload();
        await page.getByTestId('user-metadata-tab').click({ timeout: 30_000 });
        loadedAt = pressedAt = Date.now();
      } else if (Date.now() - pressedAt > 3_000) {
        // The key handler is on the page's window: the focus must not be inside the frame.
        await page.locator('body').press('r');
        pressedAt = Date.now();
      }
      return undefined;
    },
    // The details come from a query the worker answers: slow on a busy machine.
    180_000,
    500,
  ).catch(async (err: Error) => {
    await shoot(page, `${label.replace(/\W+/g, '-')}-failure`);
    throw new Error(`${err.message}\nlast current details:\n${text}`);
  });
}

describe('the operator view of a run', () => {
  it('the Web UI run page, metrics and logs tell the story from the copy to the gate to the cancellation', async () => {
    // Another run in the namespace, for the search to leave out. No worker polls its queue.
    await e2e.client.workflow.start('blueGreen', {
      taskQueue: 'cutover-web-ui-test-nobody',
      workflowId: `cutover-${OTHER_PLAN}`,
      args: [],
      typedSearchAttributes: [{ key: planSearchAttribute, value: OTHER_PLAN }],
    });
    // The default stages, with a gate before the copy: the one point at which the test can set
    // the backfill's pace without racing it. (A throttle given at the start would slow the
    // pre-flight too, which reads the same control row.)
    const planFile = e2e.writePlan(
      PLAN,
      widenPlanYaml(
        PLAN,
        `backfill:
  batchSize: 5000
  adaptive: { enabled: false }
stages:
  - name: prepare
    steps: [{ kind: shadow }, { kind: sync }]
  - name: approve-copy
    steps: [{ kind: approval, gate: copy }]
  - name: copy
    steps: [{ kind: backfill }, { kind: index }]
  - name: validate
    steps: [{ kind: verify }]
  - name: approve-shift
    steps: [{ kind: approval, gate: shift }]
  - name: shift
    steps: [{ kind: route, percent: 100 }]
`,
      ),
    );
    const started = await e2e.cli(['start', planFile]);
    expect(started.code, started.stderr).toBe(0);
    const handle = e2e.handle(PLAN);
    await waitFor(
      'the copy gate',
      async () => (await handle.query(statusQuery)).waitingGates.includes('copy'),
      120_000,
      300,
    );

    // The operator's actions from here on go through the client: the same updates and signals
    // `cutover throttle / approve / pause / resume` send (tests/e2e/bad-input.test.ts runs those
    // commands), without a CLI process per action, which costs seconds each under load.
    // 100 rows every half second: a copy of 50 s at least, which the pause below stops early.
    await handle.executeUpdate(throttleUpdate, {
      args: [{ batchSize: 100, sleepMs: 500, adaptive: false, loadBudget: false }],
    });
    expect(await handle.executeUpdate(approveUpdate, { args: [{ gate: 'copy' }] })).toBe('copy');
    await waitFor(
      'the backfill to copy rows',
      async () => {
        const s = await handle.query(statusQuery);
        return s.progress?.activity === 'backfill' && s.progress.rowsDone > 0;
      },
      120_000,
      300,
    );
    // Paused, the figures hold still however slow the browser is.
    await handle.signal(pauseSignal);
    const held = await waitFor(
      'the backfill to hold',
      async () => {
        const s = await handle.query(statusQuery);
        return s.progress?.throttled === 'paused' ? s.progress : undefined;
      },
      60_000,
      300,
    );
    expect(held.rowsDone).toBeGreaterThan(0);
    expect(held.rowsDone).toBeLessThan(ROWS);
    expect(held.total).toBe(ROWS);

    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    await findRun(page);
    const copied = held.rowsDone.toLocaleString('en-US');
    const backfillText = await detailsShow(page, /throttled: paused/, 'backfill progress');
    expect(backfillText).toMatch(
      /e2e_web_ui \(public\.orders\): running, stage copy, step copy\.backfill/,
    );
    expect(backfillText).toContain(`backfill: rows copied ${copied} / 10,000 · ${held.percent}%`);
    expect(backfillText).toContain('paused: cutover resume e2e_web_ui, or signal resume');
    await shoot(page, '2-backfill');

    const duringMetrics = await metrics();
    expect(sample(duringMetrics, 'cutover_throttled', { plan: PLAN, reason: 'paused' })).toBe(1);
    expect(sample(duringMetrics, 'cutover_stage', { plan: PLAN, stage: 'copy' })).toBe(1);
    expect(sample(duringMetrics, 'cutover_backfill_rows_copied_total', { plan: PLAN })).toBe(
      held.rowsDone,
    );
    expect(duringMetrics).toMatch(
      /^cutover_backfill_batch_seconds_count\{plan="e2e_web_ui"\} [1-9]/m,
    );
    // Temporal's runtime metrics come through the same endpoint.
    expect(duringMetrics).toMatch(/^temporal_\w+/m);

    // Full speed for the rest of the copy, then on to the shift gate.
    await handle.executeUpdate(throttleUpdate, { args: [{ batchSize: 10_000, sleepMs: 0 }] });
    await handle.signal(resumeSignal);
    await waitFor(
      'the shift gate',
      async () => (await handle.query(statusQuery)).waitingGates.includes('shift'),
      180_000,
      300,
    );
    const gateText = await detailsShow(page, /waiting for approval of gate shift/, 'the gate');
    expect(gateText).toContain(
      `waiting for approval of gate shift: cutover approve ${PLAN} shift, or signal approve with {"gate":"shift"}`,
    );
    expect(gateText).toMatch(/: waiting, stage approve-shift/);
    expect(gateText).toContain('backfill: 10,000 rows copied');
    await shoot(page, '3-gate');

    const gateMetrics = await metrics();
    expect(sample(gateMetrics, 'cutover_stage', { plan: PLAN, stage: 'approve-shift' })).toBe(1);
    expect(sample(gateMetrics, 'cutover_stage', { plan: PLAN, stage: 'copy' })).toBe(0);
    expect(sample(gateMetrics, 'cutover_backfill_rows_copied_total', { plan: PLAN })).toBe(ROWS);

    // "Request Cancellation" on the page (a workflow cancellation) rolls the run back like an abort.
    await page.getByRole('button', { name: 'Request Cancellation' }).click();
    await page
      .getByTestId('cancel-confirmation-modal')
      .getByRole('button', { name: 'Confirm' })
      .click();
    const result = (await handle.result()) as { outcome: string; reason: string };
    expect(result.outcome).toBe('rolled-back');
    expect(result.reason).toMatch(/^aborted: workflow cancellation requested/);
    const rolledBackText = await detailsShow(page, /rolled-back/, 'the rollback');
    expect(rolledBackText).toContain('undone: copy.backfill, prepare.sync, prepare.shadow');
    await shoot(page, '4-rolled-back');
    const after = await metrics();
    expect(sample(after, 'cutover_stage', { plan: PLAN, stage: 'rolled-back' })).toBe(1);

    // The worker's logs: one JSON object per line, the workflow's records with the run's ids.
    const records = workerLog
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const stageRecord = records.find(
      (r) => r.workflowId === WORKFLOW_ID && r.stage === 'approve-shift',
    );
    expect(stageRecord).toMatchObject({ plan: PLAN, msg: 'stage approve-shift' });
    expect(stageRecord!.runId).toEqual(expect.any(String));
    expect(records.some((r) => String(r.msg).startsWith('worker polling'))).toBe(true);
  }, 600_000);
});
