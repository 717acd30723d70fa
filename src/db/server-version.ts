import type pg from 'pg';
import { UserError } from '../errors';

/**
 * The PostgreSQL majors cutover is tested against (the CI matrix runs every one of them). Older
 * servers lack catalog columns and DDL forms the steps rely on; a newer one has not been tested.
 */
export const SUPPORTED_MAJORS = { oldest: 13, newest: 18 } as const;

export interface ServerVersion {
  /** server_version_num, e.g. 150004. */
  num: number;
  major: number;
  /** server_version as the server reports it, e.g. "15.4 (Debian 15.4-1)". */
  text: string;
}

/** 150004 → 15 (since PostgreSQL 10 the major is the first two digits). */
export function majorOf(versionNum: number): number {
  return Math.floor(versionNum / 10000);
}

export class UnsupportedServerError extends UserError {
  override name = 'UnsupportedServerError';
}

/** Throws a refusal naming the version unless the server is a supported major. */
export function assertSupported(v: ServerVersion): ServerVersion {
  const { oldest, newest } = SUPPORTED_MAJORS;
  if (v.major < oldest || v.major > newest) {
    throw new UnsupportedServerError(
      `PostgreSQL ${v.text} is not supported: cutover supports PostgreSQL ${oldest} to ${newest}` +
        (v.major < oldest ? '; upgrade the server first' : ''),
    );
  }
  return v;
}

/** Asks the server for its version (one round trip). */
export async function readServerVersion(client: pg.ClientBase): Promise<ServerVersion> {
  const r = await client.query<{ num: string; text: string }>(
    `SELECT current_setting('server_version_num') AS num, current_setting('server_version') AS text`,
  );
  const num = Number(r.rows[0]!.num);
  return { num, major: majorOf(num), text: r.rows[0]!.text };
}
