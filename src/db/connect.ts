import pg from 'pg';
import { UserError } from '../errors';
import { assertSupported, readServerVersion, type ServerVersion } from './server-version';

/**
 * Connections are named; their URLs come from the worker's or CLI's environment, never from
 * workflow inputs, so credentials stay out of Temporal histories.
 *
 *   default      → CUTOVER_DATABASE_URL, else DATABASE_URL
 *   <name>       → CUTOVER_DB_<NAME>_URL (upper-cased, dashes become underscores)
 */
export function connectionUrl(name = 'default', env: NodeJS.ProcessEnv = process.env): string {
  if (name === 'default') {
    const key = env.CUTOVER_DATABASE_URL !== undefined ? 'CUTOVER_DATABASE_URL' : 'DATABASE_URL';
    const url = env[key];
    if (!url)
      throw new UserError('no database configured: set DATABASE_URL (or CUTOVER_DATABASE_URL)');
    return checkedUrl(key, url);
  }
  const key = `CUTOVER_DB_${name.toUpperCase().replace(/-/g, '_')}_URL`;
  const url = env[key];
  if (!url) throw new UserError(`connection "${name}" is not configured: set ${key}`);
  return checkedUrl(key, url);
}

/**
 * The driver's own complaint about a bad URL is a bare "Invalid URL" that names neither the
 * variable nor the fix. The URL itself is never echoed: a malformed one cannot be masked reliably.
 */
function checkedUrl(variable: string, url: string): string {
  let ok = /^postgres(ql)?:\/\//i.test(url);
  if (ok) {
    try {
      new URL(url);
    } catch {
      ok = false;
    }
  }
  if (!ok) {
    throw new UserError(
      `${variable}: not a valid PostgreSQL connection URL: write it as postgres://host:5432/dbname with user:password@ before the host, percent-encoding special characters in the password (e.g. @ as %40)`,
    );
  }
  return url;
}

/** A URL safe to print or store: the password is replaced by ***. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '<unparseable connection string>';
  }
}

const versions = new WeakMap<pg.ClientBase, ServerVersion>();

/**
 * Opens one client, naming the application so cutover's sessions are visible in pg_stat_activity.
 * Every migration, plan check and worker activity connects through here, so a server outside the
 * supported majors is refused before anything reads or changes it.
 */
export async function openClient(url: string, applicationName = 'cutover'): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url, application_name: applicationName });
  try {
    await client.connect();
  } catch (err) {
    throw new DatabaseUnreachableError(url, err as Error);
  }
  // An idle connection can drop without an error event reaching a waiting query; keep the
  // process alive and let the next query fail instead of crashing on an unhandled 'error'.
  client.on('error', () => {});
  try {
    versions.set(client, assertSupported(await readServerVersion(client)));
  } catch (err) {
    await client.end().catch(() => {});
    throw err;
  }
  return client;
}

/** The server version of a client (known without a query for clients from openClient). */
export async function serverVersionOf(client: pg.ClientBase): Promise<ServerVersion> {
  let v = versions.get(client);
  if (!v) versions.set(client, (v = await readServerVersion(client)));
  return v;
}

export class DatabaseUnreachableError extends UserError {
  override name = 'DatabaseUnreachableError';
  constructor(url: string, cause: Error) {
    super(`cannot connect to PostgreSQL at ${redactUrl(url)}: ${cause.message}`);
    this.cause = cause;
  }
}
