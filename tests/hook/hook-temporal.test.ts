import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as activities from '../../src/steps/hook/action';
import { waitFor } from '../router/helpers';
import { devServerEnv, failFastWorkflowErrors, workflowBundle } from '../support/temporal';
import { runHookWorkflow } from './fixtures/hook-workflow';
import { alive, readPid } from './proc';

const workflowsPath = fileURLToPath(new URL('./fixtures/hook-workflow.ts', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'cutover-hook-t-'));
let env: TestWorkflowEnvironment;

beforeAll(async () => {
  env = await devServerEnv();
});
afterAll(async () => {
  await env?.teardown();
});

async function withWorker<T>(taskQueue: string, fn: () => Promise<T>): Promise<T> {
  const worker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue,
    workflowBundle: await workflowBundle(workflowsPath),
    activities,
    ...failFastWorkflowErrors,
  });
  return worker.runUntil(fn);
}

describe('hook activity on a real worker', () => {
  it('reports a failed command as an ApplicationFailure with its output', async () => {
    await withWorker('hook-fail', async () => {
      const err = await env.client.workflow
        .execute(runHookWorkflow, {
          taskQueue: 'hook-fail',
          workflowId: 'hook-fail',
          args: [{ kind: 'command', command: 'echo smoke tests broke; exit 2', timeoutMs: 10_000 }],
        })
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(WorkflowFailedError);
      const cause = (err as WorkflowFailedError).cause?.cause;
      expect(cause).toBeInstanceOf(ApplicationFailure);
      expect((cause as ApplicationFailure).type).toBe('HookFailed');
      expect((cause as ApplicationFailure).message).toMatch(
        /exited with code 2[\s\S]*smoke tests broke/,
      );
    });
  });

  it('kills the command when the workflow cancels the activity', async () => {
    const pidFile = join(dir, 'cancel.pid');
    await withWorker('hook-cancel', async () => {
      const handle = await env.client.workflow.start(runHookWorkflow, {
        taskQueue: 'hook-cancel',
        workflowId: 'hook-cancel',
        args: [
          {
            kind: 'command',
            command: `sleep 120 & echo $! > '${pidFile}'; wait`,
            timeoutMs: 120_000,
          },
        ],
      });
      await waitFor(() => readPid(pidFile) !== undefined, 'the hook to start', 20_000);
      const pid = readPid(pidFile)!;
      expect(alive(pid)).toBe(true);
      await handle.cancel();
      const err = await handle.result().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(WorkflowFailedError);
      expect((err as WorkflowFailedError).cause).toBeInstanceOf(CancelledFailure);
      await waitFor(() => !alive(pid), 'the hook command to be killed', 20_000);
    });
  });
});
