/**
 * The run's Web UI page ("current details") for expand steps: a DDL statement waiting for a lock
 * says on whom, a column backfill says how far and why it holds back, and finished steps say
 * what they did.
 */
import { describe, expect, it } from 'vitest';
import type { RunStatus } from '../../workflows/definitions';
import { renderDetails } from '../../workflows/details';

const base: RunStatus = {
  plan: 'release_42',
  table: 'public.orders',
  state: 'running',
  stage: 'expand-users',
  step: 'expand-users.addColumn',
  stepsDone: [],
  stepsTotal: 5,
  routePercent: 0,
  waitingGates: [],
  paused: false,
  throttle: {},
  lastChecks: [],
  undone: [],
};
const live = {
  rowsDone: 0,
  total: null,
  percent: null,
  rowsPerSecond: null,
  etaSeconds: null,
  attempt: 1,
  updatedAt: '2026-11-29T17:00:00.000Z',
};

describe('Web UI details of expand steps', () => {
  it('a DDL lock wait names who holds the table', () => {
    const text = renderDetails({
      ...base,
      progress: {
        ...live,
        activity: 'ddl',
        throttled:
          'waiting for a lock on public.users (attempt 2, next in 400 ms): pid 42 (transaction 30s old, idle in transaction): SELECT 1',
      },
    });
    expect(text).toContain(
      'waiting: waiting for a lock on public.users (attempt 2, next in 400 ms): pid 42',
    );
    expect(text).not.toContain('rows');
  });

  it('a column backfill shows its rows and its throttle; finished steps say what they did', () => {
    const text = renderDetails({
      ...base,
      step: 'expand-users.backfillColumn',
      progress: {
        ...live,
        activity: 'backfillColumn',
        rowsDone: 5000,
        total: 20000,
        percent: 25,
        throttled: 'critical: 41 active backends ≥ 40',
      },
      results: { 'preferences.batchMigrate': '300 items, 0 dead letters' },
    });
    expect(text).toContain('backfillColumn: rows walked 5');
    expect(text).toContain('throttled: critical: 41 active backends ≥ 40');
    expect(text).toContain('preferences.batchMigrate: 300 items, 0 dead letters');
  });
});
