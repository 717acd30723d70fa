import { fileURLToPath } from 'node:url';
import { Worker } from '@temporalio/worker';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { afterAll, describe, expect, it } from 'vitest';
import {
  devServerEnv,
  failFastWorkflowErrors,
  timeSkippingEnv,
  workflowBundle,
} from '../support/temporal';
import { smoke } from '../fixtures/smoke-workflow';

const workflowsPath = fileURLToPath(new URL('../fixtures/smoke-workflow.ts', import.meta.url));

async function runSmoke(env: TestWorkflowEnvironment, taskQueue: string): Promise<string> {
  const worker = await Worker.create({
    connection: env.nativeConnection,
    namespace: env.namespace ?? 'default',
    taskQueue,
    workflowBundle: await workflowBundle(workflowsPath),
    activities: { greet: async (name: string) => `hello, ${name}` },
    ...failFastWorkflowErrors,
  });
  return worker.runUntil(
    env.client.workflow.execute(smoke, {
      taskQueue,
      workflowId: `smoke-${taskQueue}`,
      args: ['cutover'],
    }),
  );
}

describe('Temporal servers installed by scripts/setup.sh', () => {
  const envs: TestWorkflowEnvironment[] = [];
  afterAll(async () => {
    await Promise.all(envs.map((e) => e.teardown()));
  });

  it('time-skipping test server skips an hour-long timer', async () => {
    const env = await timeSkippingEnv();
    envs.push(env);
    const started = Date.now();
    await expect(runSmoke(env, 'ts')).resolves.toBe('hello, cutover');
    expect(Date.now() - started).toBeLessThan(30_000);
  });

  it('temporal server start-dev runs a workflow and records its history', async () => {
    const env = await devServerEnv();
    envs.push(env);
    const taskQueue = 'dev';
    const worker = await Worker.create({
      connection: env.nativeConnection,
      taskQueue,
      workflowBundle: await workflowBundle(workflowsPath),
      activities: { greet: async (name: string) => `hello, ${name}` },
      ...failFastWorkflowErrors,
    });
    // Real time on the dev server: start the workflow, then skip its timer by observing it
    // pending and checking the history instead of waiting an hour.
    await worker.runUntil(async () => {
      const handle = await env.client.workflow.start(smoke, {
        taskQueue,
        workflowId: 'smoke-dev',
        args: ['dev'],
      });
      for (let i = 0; i < 50; i++) {
        const history = await handle.fetchHistory();
        if (history.events?.some((e) => e.timerStartedEventAttributes)) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      const history = await handle.fetchHistory();
      expect(history.events?.some((e) => e.timerStartedEventAttributes)).toBe(true);
      const desc = await handle.describe();
      expect(desc.status.name).toBe('RUNNING');
      await handle.terminate('smoke test done');
    });
  });
});
