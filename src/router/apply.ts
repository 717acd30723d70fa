import type { ClientBase } from 'pg';
import { UserError } from '../errors';
import { routerConfigSchema, type ResolvedRouterConfig, type RouterConfig } from './config';
import { displayUrl, httpRequest, resolveHeaders } from './http-request';
import { tail } from './output-buffer';
import { describeExit, runCommand } from './run-command';
import { setRoute, type RouteChange } from './store';

/** An external router refused or failed a change; nothing was recorded. */
export class RouterError extends Error {
  override name = 'RouterError';
}

export function parseRouterConfig(config: RouterConfig): ResolvedRouterConfig {
  const parsed = routerConfigSchema.safeParse(config);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const at = issue.path.length ? `router.${issue.path.join('.')}: ` : 'router: ';
    throw new UserError(`${at}${issue.message}`);
  }
  return parsed.data;
}

/**
 * Moves a migration's traffic to `percent`. The ledger row in cutover.routes is always written
 * (that is what createRouter follows, and what undo reads); an external router is called inside
 * the same transaction, so when it fails the ledger keeps its old value and no NOTIFY goes out.
 * External routers are called even when the percent is unchanged: a retry after a lost reply
 * must still reach them, and setting the same percent twice is harmless.
 */
export async function applyRoute(
  client: ClientBase,
  migration: string,
  percent: number,
  config: RouterConfig,
  opts: { signal?: AbortSignal; env?: NodeJS.ProcessEnv } = {},
): Promise<RouteChange> {
  const router = parseRouterConfig(config);
  return setRoute(client, migration, percent, async (change) => {
    if (router.kind === 'webhook') await callWebhook(router, change, opts);
    if (router.kind === 'command') await callCommand(router, change, opts);
  });
}

async function callWebhook(
  router: Extract<ResolvedRouterConfig, { kind: 'webhook' }>,
  change: RouteChange,
  opts: { signal?: AbortSignal; env?: NodeJS.ProcessEnv },
): Promise<void> {
  const body = JSON.stringify({
    migration: change.migration,
    percent: change.percent,
    version: change.version,
    swapped: change.swapped,
  });
  let res;
  try {
    res = await httpRequest({
      url: router.url,
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        ...resolveHeaders(router.headers, router.headersFromEnv, opts.env),
      },
      body,
      timeoutMs: router.timeoutMs,
      signal: opts.signal,
      bodyLimit: 4096,
    });
  } catch (err) {
    throw new RouterError(`webhook router failed: ${(err as Error).message}`);
  }
  if (res.status < 200 || res.status > 299) {
    const detail = res.body.trim() ? `: ${tail(res.body, 500)}` : '';
    throw new RouterError(
      `webhook router ${displayUrl(router.url)} answered HTTP ${res.status}${detail}`,
    );
  }
}

async function callCommand(
  router: Extract<ResolvedRouterConfig, { kind: 'command' }>,
  change: RouteChange,
  opts: { signal?: AbortSignal },
): Promise<void> {
  const r = await runCommand({
    command: router.command,
    timeoutMs: router.timeoutMs,
    signal: opts.signal,
    env: {
      CUTOVER_MIGRATION: change.migration,
      CUTOVER_PERCENT: String(change.percent),
      CUTOVER_ROUTE_VERSION: String(change.version),
      CUTOVER_SWAPPED: String(change.swapped),
    },
  });
  if (r.exitCode !== 0) {
    const out = r.output.trim() ? `; output:\n${tail(r.output)}` : '';
    throw new RouterError(`command router ${describeExit(r, router.timeoutMs)}${out}`);
  }
}
