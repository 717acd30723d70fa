import { UserError } from '../errors';

/**
 * How to hand a connection URL to a libpq program (pg_dump, pg_restore) without its password
 * appearing on a command line (visible to every user through ps / /proc): the URL minus its
 * password goes in --dbname, the password in PGPASSWORD.
 */
export interface LibpqConnection {
  /** --dbname value: the URL with the password removed. */
  dbnameArg: string;
  /** Environment for the child: the parent's, plus PGPASSWORD when the URL carried one. */
  env: NodeJS.ProcessEnv;
  database: string;
  /** Host name only: never user or password. */
  host: string;
  port: number;
}

export function libpqConnection(
  url: string,
  baseEnv: NodeJS.ProcessEnv = process.env,
): LibpqConnection {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new UserError(
      'the connection must be a postgres:// URL (key=value connection strings are not supported here)',
    );
  }
  if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') {
    throw new UserError(`the connection URL must start with postgres:// (got ${u.protocol}//)`);
  }
  const env: NodeJS.ProcessEnv = { ...baseEnv };
  if (u.password) {
    env.PGPASSWORD = decodeURIComponent(u.password);
    u.password = '';
  }
  const database =
    decodeURIComponent(u.pathname.replace(/^\//, '')) ||
    decodeURIComponent(u.username) ||
    'postgres';
  return {
    dbnameArg: u.toString(),
    env,
    database,
    host: u.hostname || u.searchParams.get('host') || 'localhost',
    port: Number(u.port || u.searchParams.get('port') || 5432),
  };
}
