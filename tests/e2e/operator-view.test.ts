/**
 * What an operator sees of a run: the run's own page in the dev server's Web UI (headless
 * Chromium, found through the CutoverPlan search attribute) shows the stage, live backfill
 * progress and, at the gate, how to approve; the worker started with --metrics-port serves
 * cutover's and Temporal's metrics; its logs are JSON lines carrying the run's ids. Screenshots
 * go to test-artifacts/web-ui/ (git-ignored); CUTOVER_UPDATE_DOCS_SCREENSHOT=1 also refreshes the
 * one in docs/.
 */
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/db/local-cluster';
import { projectRoot } from '../../src/tools';
import { statusQuery } from '../../workflows/definitions';
import {
  seedOrders,
  startE2E,
  waitFor,
  widenPlanYaml,
  type ChildHandle,
  type E2E,
} from './support';

const PLAN = 'e2e_operator_view';
const WORKFLOW_ID = `cutover-${PLAN}`;
const ROWS = 40_000;
const ARTIFACTS = join(projectRoot, 'test-artifacts', 'web-ui');
const CHROMIUM = process.env.CUTOVER_CHROMIUM ?? '/usr/bin/chromium';

let e2e: E2E;
let worker: ChildHandle;
let metricsPort: number;
let browser: BrowserContext;
let profileDir: string;

beforeAll(async () => {
  e2e = await startE2E('e2eview', { ui: true });
  await seedOrders(e2e.db, ROWS);
  metricsPort = await freePort();
  worker = await e2e.startWorker([
    '--metrics-port',
    String(metricsPort),
    '--metrics-host',
    '127.0.0.1',
  ]);
  mkdirSync(ARTIFACTS, { recursive: true });
  profileDir = mkdtempSync(join(tmpdir(), 'cutover-chromium-'));
  // Debian's Chromium: playwright's own browser download cannot work here.
  browser = await chromium.launchPersistentContext(profileDir, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1400, height: 1100 },
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
});
afterAll(async () => {
  await browser?.close().catch(() => {});
  if (profileDir) rmSync(profileDir, { recursive: true, force: true });
  await e2e?.stop();
});

async function metrics(): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
  expect(res.status).toBe(200);
  return res.text();
}

/** The value of one sample, e.g. sample(text, 'cutover_stage', { plan, stage: 'prepare' }). */
function sample(text: string, name: string, labels: Record<string, string>): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const inner = line.slice(name.length + 1, line.lastIndexOf('}'));
    if (Object.entries(labels).every(([k, v]) => inner.includes(`${k}="${v}"`)))
      return Number(line.slice(line.lastIndexOf('}') + 1).trim());
  }
  return undefined;
}

/** The run's page, reached as an operator would: the list filtered by the plan's search attribute. */
async function openRunPage(page: Page): Promise<void> {
  const query = encodeURIComponent(`CutoverPlan="${PLAN}"`);
  await page.goto(`${e2e.server.uiUrl}/namespaces/default/workflows?query=${query}`);
  try {
    const link = page.getByRole('link', { name: WORKFLOW_ID }).first();
    await link.waitFor({ timeout: 60_000 });
    await link.click();
    await page.waitForURL(/\/workflows\/cutover-e2e_operator_view\//, { timeout: 60_000 });
  } catch (err) {
    await page.screenshot({ path: join(ARTIFACTS, 'list-failure.png'), fullPage: true });
    throw new Error(
      `${(err as Error).message}\nlist page text:\n${await page.locator('body').innerText()}`,
    );
  }
}

/** Reloads the run's page until its text matches, and returns that text. */
async function pageShows(page: Page, what: RegExp, label: string): Promise<string> {
  let text = '';
  return waitFor(
    `the run page to show ${label}`,
    async () => {
      await page.reload();
      await page.waitForLoadState('networkidle', { timeout: 20_000 }).catch(() => {});
      // Web UI 2.5x shows the current details (markdown) on the run page's User Metadata tab.
      await page.getByText('User Metadata', { exact: true }).first().click({ timeout: 20_000 });
      const shown = await page
        .getByText(what)
        .first()
        // The details come from a query the worker answers: slow on a busy machine.
        .waitFor({ timeout: 30_000 })
        .then(() => true)
        .catch(() => false);
      text = (await page.locator('body').textContent()) ?? '';
      return shown ? text : undefined;
    },
    240_000,
    2000,
  ).catch(async (err: Error) => {
    await page.screenshot({ path: join(ARTIFACTS, `${label.replace(/\W+/g, '-')}-failure.png`) });
    throw new Error(`${err.message}\nlast page text:\n${text}`);
  });
}

describe('the operator view of a run', () => {
  it('Web UI page, status query, metrics and logs tell the story from backfill to gate to cancellation', async () => {
    const planFile = e2e.writePlan(
      PLAN,
      widenPlanYaml(
        PLAN,
        `backfill:
  batchSize: 200
  pauseMs: 150
  adaptive: { enabled: false }
shift:
  steps:
    - { percent: 50, monitorSeconds: 1 }
    - { percent: 100, monitorSeconds: 1 }
`,
      ),
    );
    const started = await e2e.cli(['start', planFile, '--rollback-window', '0s']);
    expect(started.code, started.stderr).toBe(0);
    const handle = e2e.handle(PLAN);

    // During the backfill the status query carries live progress.
    const during = await waitFor(
      'live backfill progress in the status query',
      async () => {
        const s = await handle.query(statusQuery);
        return s.progress?.activity === 'backfill' && s.progress.rowsDone > 0 ? s : undefined;
      },
      120_000,
      500,
    );
    expect(during.stage).toBe('prepare');
    expect(during.progress!.total).toBeGreaterThan(0);

    // Paused, the backfill holds still however slow the browser is, and the page says why.
    const paused = await e2e.cli(['pause', PLAN]);
    expect(paused.code, paused.stderr).toBe(0);
    const page = await browser.newPage();
    await openRunPage(page);
    const backfillText = await pageShows(page, /throttled: paused/, 'backfill progress');
    expect(backfillText).toMatch(/stage\s+prepare/);
    expect(backfillText).toMatch(/step\s+prepare\.backfill/);
    expect(backfillText).toMatch(/rows copied [\d,]+ \/ [\d,]+ · [\d.]+%/);
    await page.screenshot({ path: join(ARTIFACTS, 'backfill.png'), fullPage: true });
    expect(sample(await metrics(), 'cutover_throttled', { plan: PLAN, reason: 'paused' })).toBe(1);
    const resumed = await e2e.cli(['resume', PLAN]);
    expect(resumed.code, resumed.stderr).toBe(0);

    const duringMetrics = await metrics();
    expect(sample(duringMetrics, 'cutover_stage', { plan: PLAN, stage: 'prepare' })).toBe(1);
    expect(
      sample(duringMetrics, 'cutover_backfill_rows_copied_total', { plan: PLAN }),
    ).toBeGreaterThan(0);
    expect(duringMetrics).toMatch(
      /^cutover_backfill_batch_seconds_count\{plan="e2e_operator_view"\} [1-9]/m,
    );
    // Temporal's runtime metrics come through the same endpoint.
    expect(duringMetrics).toMatch(/^temporal_\w+/m);

    // At the gate the page says which gate waits and both ways to approve it.
    await waitFor(
      'the shift gate',
      async () => (await handle.query(statusQuery)).waitingGates.includes('shift'),
      180_000,
      500,
    );
    const gateText = await pageShows(page, /waiting for approval of gate/, 'the gate');
    expect(gateText).toContain(
      `waiting for approval of gate shift: cutover approve ${PLAN} shift, or signal approve with {"gate":"shift"}`,
    );
    expect(gateText).toMatch(/stage\s+approve-shift/);
    expect(gateText).toMatch(new RegExp(`backfill: ${(ROWS / 1000).toFixed(0)},000 rows copied`));
    await page.screenshot({ path: join(ARTIFACTS, 'gate.png'), fullPage: true });
    if (process.env.CUTOVER_UPDATE_DOCS_SCREENSHOT === '1')
      copyFileSync(
        join(ARTIFACTS, 'backfill.png'),
        join(projectRoot, 'docs', 'web-ui-run-page.png'),
      );

    const gateMetrics = await metrics();
    expect(sample(gateMetrics, 'cutover_stage', { plan: PLAN, stage: 'approve-shift' })).toBe(1);
    expect(sample(gateMetrics, 'cutover_stage', { plan: PLAN, stage: 'prepare' })).toBe(0);
    expect(sample(gateMetrics, 'cutover_backfill_rows_copied_total', { plan: PLAN })).toBe(ROWS);

    // "Request Cancellation" (a workflow cancellation) rolls the run back like an abort.
    await handle.cancel();
    const result = (await handle.result()) as { outcome: string; reason: string };
    expect(result.outcome).toBe('rolled-back');
    expect(result.reason).toMatch(/^aborted: workflow cancellation requested/);
    const after = await metrics();
    expect(sample(after, 'cutover_stage', { plan: PLAN, stage: 'rolled-back' })).toBe(1);
    const rolledBackText = await pageShows(page, /rolled-back/, 'the rollback');
    expect(rolledBackText).toMatch(/undone: prepare\.backfill, prepare\.sync, prepare\.shadow/);
    await page.screenshot({ path: join(ARTIFACTS, 'rolled-back.png'), fullPage: true });

    // The worker's logs: one JSON object per line, workflow records with the run's ids.
    const records = worker
      .output()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(records.length).toBeGreaterThan(0);
    const stageRecord = records.find((r) => r.workflowId === WORKFLOW_ID && r.stage === 'prepare');
    expect(stageRecord).toMatchObject({ plan: PLAN, msg: 'stage prepare' });
    expect(stageRecord!.runId).toEqual(expect.any(String));
    expect(records.some((r) => String(r.msg).startsWith('worker polling'))).toBe(true);
  }, 600_000);
});
