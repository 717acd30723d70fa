/**
 * Step kind `hook`: a shell command or an HTTP call the plan puts between stages (deploy the
 * app version that reads the new table, run integration tests, run a benchmark). Output is
 * captured, bounded, and shown in the failure; a timeout or a cancelled activity kills the
 * command's whole process group. Hooks have no undo unless the plan gives one (`undo`).
 */
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import type { z } from 'zod';
import { cancellationSignal, whileHeartbeating } from '../../temporal/activity';
import {
  actionSchema,
  hookSchema,
  type HookAction,
  type HookConfig,
  type ResolvedAction,
} from './schema';

export {
  commandHookSchema,
  httpHookSchema,
  hookSchema,
  type HookAction,
  type HookConfig,
} from './schema';
import {
  displayUrl,
  expectedStatusText,
  httpRequest,
  resolveHeaders,
  statusAccepted,
} from '../../router/http-request';
import { tail } from '../../router/output-buffer';
import { describeExit, runCommand } from '../../router/run-command';

export interface HookResult {
  kind: 'command' | 'http';
  /** Exit code (command) or HTTP status (http). */
  code: number | null;
  /** Tail of the command's output or of the response body. */
  output: string;
  durationMs: number;
}

/** Failure types the workflow can list in a retry policy's nonRetryableErrorTypes. */
export const HookFailureType = {
  failed: 'HookFailed',
  timedOut: 'HookTimedOut',
  config: 'HookConfigError',
} as const;

const RESULT_OUTPUT_CHARS = 4000;
const ERROR_OUTPUT_CHARS = 2000;

function parse<T>(schema: z.ZodType<T>, config: unknown, what: string): T {
  const parsed = schema.safeParse(config);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const at = issue.path.length ? `${issue.path.join('.')}: ` : '';
    throw ApplicationFailure.create({
      type: HookFailureType.config,
      message: `${what}: ${at}${issue.message}`,
      nonRetryable: true,
    });
  }
  return parsed.data;
}

/** Read-only: the config is well-formed and the header variables it names are set. */
export async function hookValidate(config: HookConfig): Promise<{ hasUndo: boolean }> {
  const hook = parse(hookSchema, config, 'hook');
  for (const action of [hook, hook.undo]) {
    if (action?.kind === 'http') {
      try {
        resolveHeaders(action.headers, action.headersFromEnv);
      } catch (err) {
        throw ApplicationFailure.create({
          type: HookFailureType.config,
          message: `hook: ${(err as Error).message}`,
          nonRetryable: true,
        });
      }
    }
  }
  return { hasUndo: hook.undo !== undefined };
}

/** Runs the hook; throws an ApplicationFailure (HookFailed / HookTimedOut) when it fails. */
export async function hookRun(config: HookConfig): Promise<HookResult> {
  const hook = parse(hookSchema, config, 'hook');
  return runAction(hook, 'hook');
}

/** Runs the hook's `undo` action, if the plan gave one; otherwise does nothing. */
export async function hookUndo(
  config: HookConfig,
): Promise<HookResult | { skipped: true; reason: string }> {
  const hook = parse(hookSchema, config, 'hook');
  if (!hook.undo) return { skipped: true, reason: 'the hook has no undo action' };
  return runAction(hook.undo, 'hook undo');
}

/**
 * Runs one action outside any Temporal context (tests, CLI) with an explicit abort signal; the
 * activities above use the activity's cancellation instead.
 */
export async function runHookAction(
  action: HookAction,
  opts: { signal?: AbortSignal; label?: string } = {},
): Promise<HookResult> {
  return runAction(
    parse(actionSchema, action, opts.label ?? 'hook'),
    opts.label ?? 'hook',
    opts.signal,
  );
}

async function runAction(
  action: ResolvedAction,
  label: string,
  explicitSignal?: AbortSignal,
): Promise<HookResult> {
  const signal = explicitSignal ?? cancellationSignal();
  const started = Date.now();
  // A hook may run for hours: the heartbeat is how Temporal notices a dead worker (the step's
  // heartbeatTimeout), and the only way cancellation reaches the command.
  return whileHeartbeating(
    () => ({ elapsedMs: Date.now() - started }),
    () =>
      action.kind === 'command'
        ? runCommandAction(action, label, signal)
        : runHttpAction(action, label, signal),
    1000,
  );
}

async function runCommandAction(
  action: Extract<ResolvedAction, { kind: 'command' }>,
  label: string,
  signal: AbortSignal | undefined,
): Promise<HookResult> {
  const shown = typeof action.command === 'string' ? action.command : action.command.join(' ');
  let r;
  try {
    r = await runCommand({
      command: action.command,
      timeoutMs: action.timeoutMs,
      env: action.env,
      cwd: action.cwd,
      signal,
    });
  } catch (err) {
    // spawn itself failed: missing program or cwd.
    throw ApplicationFailure.create({
      type: HookFailureType.failed,
      message: `${label} \`${short(shown)}\` could not start: ${(err as Error).message}`,
      nonRetryable: true,
    });
  }
  const output = tail(r.output, RESULT_OUTPUT_CHARS);
  if (r.cancelled)
    throw new CancelledFailure(`${label} \`${short(shown)}\` was cancelled and killed`);
  if (r.exitCode === 0) {
    return { kind: 'command', code: 0, output, durationMs: r.durationMs };
  }
  const shownOutput = r.output.trim() ? `; output:\n${tail(r.output, ERROR_OUTPUT_CHARS)}` : '';
  throw ApplicationFailure.create({
    type: r.timedOut ? HookFailureType.timedOut : HookFailureType.failed,
    message: `${label} \`${short(shown)}\` ${describeExit(r, action.timeoutMs)}${shownOutput}`,
    details: [{ code: r.exitCode, signal: r.signal, durationMs: r.durationMs }],
  });
}

async function runHttpAction(
  action: Extract<ResolvedAction, { kind: 'http' }>,
  label: string,
  signal: AbortSignal | undefined,
): Promise<HookResult> {
  const started = Date.now();
  const target = `${action.method} ${displayUrl(action.url)}`;
  const headers = resolveHeaders(action.headers, action.headersFromEnv);
  let body: string | undefined;
  if (action.body !== undefined) {
    if (typeof action.body === 'string') {
      body = action.body;
    } else {
      body = JSON.stringify(action.body);
      if (!Object.keys(headers).some((h) => h.toLowerCase() === 'content-type')) {
        headers['content-type'] = 'application/json';
      }
    }
  }
  let res;
  try {
    res = await httpRequest({
      url: action.url,
      method: action.method,
      headers,
      body,
      timeoutMs: action.timeoutMs,
      signal,
      bodyLimit: 64 * 1024,
    });
  } catch (err) {
    if (signal?.aborted) throw new CancelledFailure(`${label} ${target} was cancelled`);
    const timedOut = (err as { timedOut?: boolean }).timedOut === true;
    throw ApplicationFailure.create({
      type: timedOut ? HookFailureType.timedOut : HookFailureType.failed,
      message: `${label} failed: ${(err as Error).message}`,
    });
  }
  const ok = statusAccepted(res.status, action.expectStatus);
  const durationMs = Date.now() - started;
  if (ok) {
    return {
      kind: 'http',
      code: res.status,
      output: tail(res.body, RESULT_OUTPUT_CHARS),
      durationMs,
    };
  }
  const want = expectedStatusText(action.expectStatus);
  const shownBody = res.body.trim() ? `: ${tail(res.body, ERROR_OUTPUT_CHARS)}` : '';
  throw ApplicationFailure.create({
    type: HookFailureType.failed,
    message: `${label} ${target} answered HTTP ${res.status}, expected ${want}${shownBody}`,
    details: [{ code: res.status, durationMs }],
  });
}

function short(s: string): string {
  const flat = s.replace(/\s+/g, ' ').trim();
  return flat.length > 120 ? `${flat.slice(0, 119)}…` : flat;
}
