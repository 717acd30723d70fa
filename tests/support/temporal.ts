import { TestWorkflowEnvironment } from '@temporalio/testing';
import {
  Runtime,
  DefaultLogger,
  bundleWorkflowCode,
  type WorkflowBundleWithSourceMap,
} from '@temporalio/worker';
import { toolPath } from '../../src/tools';

let runtimeInstalled = false;

/** Quiet the SDK's logs in tests (installing a Runtime twice in one process throws). */
export function installQuietRuntime(): void {
  if (runtimeInstalled) return;
  Runtime.install({ logger: new DefaultLogger('WARN') });
  runtimeInstalled = true;
}

/** The Java time-skipping test server, from the binary scripts/setup.sh installed. */
export async function timeSkippingEnv(): Promise<TestWorkflowEnvironment> {
  installQuietRuntime();
  return TestWorkflowEnvironment.createTimeSkipping({
    server: { executable: { type: 'existing-path', path: toolPath('temporal-test-server') } },
  });
}

/** `temporal server start-dev` (real time, SQLite in memory), from the installed Temporal CLI. */
export async function devServerEnv(
  searchAttributes: Parameters<typeof TestWorkflowEnvironment.createLocal>[0] extends infer O
    ? O extends { server?: { searchAttributes?: infer S } }
      ? S
      : never
    : never = [],
): Promise<TestWorkflowEnvironment> {
  installQuietRuntime();
  return TestWorkflowEnvironment.createLocal({
    server: {
      executable: { type: 'existing-path', path: toolPath('temporal') },
      searchAttributes,
      extraArgs: ['--headless'],
    },
  });
}

const bundles = new Map<string, Promise<WorkflowBundleWithSourceMap>>();

/** Bundles workflow code once per test file and reuses it for every worker. */
export function workflowBundle(workflowsPath: string): Promise<WorkflowBundleWithSourceMap> {
  let b = bundles.get(workflowsPath);
  if (!b) {
    b = bundleWorkflowCode({ workflowsPath, logger: new DefaultLogger('WARN') });
    bundles.set(workflowsPath, b);
  }
  return b;
}

/** Worker options that turn any workflow-task error into a failed run instead of a hang. */
export const failFastWorkflowErrors = { workflowFailureErrorTypes: { '*': ['Error'] } };
