/**
 * Step kind `route`: moves a share of the traffic to the new table. The percent is recorded in
 * cutover.routes (and announced with NOTIFY) for every router kind; webhook and command routers
 * are called in the same transaction. Undo sends everything back to the old table.
 */
import type { ClientBase } from 'pg';
import { isSafeIdent } from '../../db/ident';
import { UserError } from '../../errors';
import { cancellationSignal, withConnection } from '../../temporal/activity';
import { resolveHeaders } from '../../router/http-request';
import { applyRoute, parseRouterConfig } from '../../router/apply';
import type { RouterConfig } from '../../router/config';
import { assertPercent, getRoute, type RouteChange } from '../../router/store';

export interface RouteTarget {
  /** Named connection (see src/db/connect.ts) of the database holding cutover.routes. */
  connection: string;
  /** Migration (plan) name: the key of the route row and what applications follow. */
  migration: string;
  /** Defaults to { kind: 'postgres' }. */
  router?: RouterConfig;
}

export interface RouteSetInput extends RouteTarget {
  percent: number;
}

export interface RouteValidateResult {
  /** The percent currently recorded (0 when no route exists yet). */
  currentPercent: number;
  routeExists: boolean;
}

function checkInput(input: RouteTarget): RouterConfig {
  if (!isSafeIdent(input.migration)) {
    throw new UserError(
      `route: migration name "${input.migration}" must be a plain identifier (letters, digits, _)`,
    );
  }
  const router = input.router ?? { kind: 'postgres' };
  const parsed = parseRouterConfig(router);
  if (parsed.kind === 'webhook') {
    try {
      resolveHeaders(parsed.headers, parsed.headersFromEnv);
    } catch (err) {
      throw new UserError(`router: ${(err as Error).message}`);
    }
  }
  return router;
}

const withClient = <T>(connection: string, work: (c: ClientBase) => Promise<T>) =>
  withConnection(connection, 'cutover-route', work);

/** Read-only: the input is valid, the database reachable; reports the current percent. */
export async function routeValidate(input: RouteTarget): Promise<RouteValidateResult> {
  checkInput(input);
  return withClient(input.connection, async (client) => {
    const route = await getRoute(client, input.migration);
    return { currentPercent: route?.percent ?? 0, routeExists: route !== undefined };
  });
}

/**
 * Sets the route to `percent`. The result's `previous` is what the workflow records for undo
 * (routeUndo restores 0 by default, or a given percent).
 */
export async function routeSet(input: RouteSetInput): Promise<RouteChange> {
  const router = checkInput(input);
  try {
    assertPercent(input.percent);
  } catch (err) {
    throw new UserError(`route: ${(err as Error).message}`);
  }
  return withClient(input.connection, (client) =>
    applyRoute(client, input.migration, input.percent, router, {
      signal: cancellationSignal(),
    }),
  );
}

/**
 * Undo of routeSet: everything back to the old table (percent 0, or `percent` when given).
 * Idempotent. With the postgres router and no route ever recorded there is nothing to undo;
 * external routers are told anyway, since a call may have reached them before a failure.
 */
export async function routeUndo(
  input: RouteTarget & { percent?: number },
): Promise<RouteChange | { migration: string; changed: false; skipped: true }> {
  const router = checkInput(input);
  const percent = input.percent ?? 0;
  assertPercent(percent);
  return withClient(input.connection, async (client) => {
    if (router.kind === 'postgres') {
      const route = await getRoute(client, input.migration);
      if (!route) return { migration: input.migration, changed: false, skipped: true } as const;
    }
    return applyRoute(client, input.migration, percent, router, {
      signal: cancellationSignal(),
    });
  });
}
