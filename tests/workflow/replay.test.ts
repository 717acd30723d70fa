import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils';
import { Worker } from '@temporalio/worker';
import { describe, expect, it } from 'vitest';
import { workflowsPath } from '../../src/temporal/worker';
import { installQuietRuntime, workflowBundle } from '../support/temporal';

/**
 * Determinism guard: histories recorded from real runs (committed under tests/fixtures/histories)
 * must replay against the current workflow code. A change that breaks this needs patched().
 * Re-record (only for a deliberate, patched() change) with:
 *   CUTOVER_RECORD_HISTORIES=$PWD/tests/fixtures/histories npx vitest run tests/workflow/blue-green.test.ts
 */
const histories = ['blue-green-full.json', 'blue-green-abort-at-50.json'];

describe('replay of recorded histories', () => {
  for (const name of histories) {
    it(`${name} replays against the current workflow code`, async () => {
      installQuietRuntime();
      const path = fileURLToPath(new URL(`../fixtures/histories/${name}`, import.meta.url));
      const history = historyFromJSON(JSON.parse(readFileSync(path, 'utf8')));
      expect(history.events?.length).toBeGreaterThan(20);
      await expect(
        Worker.runReplayHistory(
          { workflowBundle: await workflowBundle(workflowsPath) },
          history,
          'replay-' + name,
        ),
      ).resolves.toBeUndefined();
    });
  }
});
