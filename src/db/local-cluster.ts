import { spawn, execFile } from 'node:child_process';
import { cp, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { serverInstall, type PgInstall } from './pg-installs';

const run = promisify(execFile);

/** A free TCP port on loopback, chosen by the kernel. */
export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() =>
        typeof addr === 'object' && addr ? resolvePort(addr.port) : reject(new Error('no port')),
      );
    });
  });
}

async function postgresOsUser(): Promise<{ uid: number; gid: number }> {
  try {
    const uid = Number((await run('id', ['-u', 'postgres'])).stdout.trim());
    const gid = Number((await run('id', ['-g', 'postgres'])).stdout.trim());
    return { uid, gid };
  } catch {
    throw new Error(
      'running as root needs a `postgres` OS user to own the cluster (apt-get install postgresql creates one)',
    );
  }
}

/**
 * As root the server runs as `postgres`, which must be able to reach the binaries. A checkout
 * under a private home directory (mode 700) hides them; then run a copy from the temp dir,
 * made once per installed version.
 */
async function reachableInstall(
  install: PgInstall,
  owner: { uid: number; gid: number },
): Promise<PgInstall> {
  const usable = await run(join(install.binDir, 'postgres'), ['--version'], owner).then(
    () => true,
    () => false,
  );
  if (usable || !install.relocatable) return install;
  const { root, parts } = install.relocatable;
  const copyRoot = join(tmpdir(), `cutover-${install.source.replace(/[^A-Za-z0-9.]+/g, '-')}`);
  if (!existsSync(join(copyRoot, '.complete'))) {
    const staging = `${copyRoot}.${process.pid}`;
    for (const part of parts) {
      await cp(join(root, part), join(staging, part), { recursive: true, verbatimSymlinks: true });
    }
    await writeFile(join(staging, '.complete'), '');
    await rename(staging, copyRoot).catch(() => rm(staging, { recursive: true, force: true }));
  }
  return { ...install, binDir: join(copyRoot, relative(root, install.binDir)) };
}

export interface LocalCluster {
  /** Superuser URL of the `postgres` database. */
  url: string;
  port: number;
  dataDir: string;
  /** The installation the server runs from. */
  install: PgInstall;
  stop(): Promise<void>;
}

export interface LocalClusterOptions {
  /** Which server to run (default: serverInstall(), the newest supported major installed). */
  install?: PgInstall;
  /** Keep data here (created with initdb when empty); a temp dir that is removed on stop otherwise. */
  dataDir?: string;
  port?: number;
  /** Trade durability for speed: right for tests, wrong for anything you want to keep. */
  fast?: boolean;
}

/**
 * Starts a private PostgreSQL cluster (initdb + postgres on loopback) for tests and the demo.
 * Runs as the current OS user; as root it drops to the `postgres` user, as PostgreSQL insists.
 */
export async function startLocalCluster(opts: LocalClusterOptions = {}): Promise<LocalCluster> {
  const ephemeral = !opts.dataDir;
  const dataDir = opts.dataDir ?? join(await mkdtemp(join(tmpdir(), 'cutover-pg-')), 'data');
  const port = opts.port ?? (await freePort());
  // PostgreSQL refuses to run as root; as root, run it as the `postgres` OS user. The uid/gid
  // go straight to spawn (not through runuser/su), so our signals reach postgres itself.
  const owner = process.getuid?.() === 0 ? await postgresOsUser() : undefined;
  const chosen = opts.install ?? serverInstall();
  const install = owner ? await reachableInstall(chosen, owner) : chosen;
  const parent = join(dataDir, '..');
  if (owner) await run('chown', [`${owner.uid}:${owner.gid}`, parent]);

  if (!existsSync(join(dataDir, 'PG_VERSION'))) {
    await run(
      join(install.binDir, 'initdb'),
      [
        '-D',
        dataDir,
        '-U',
        'postgres',
        '--auth=trust',
        '--encoding=UTF8',
        '--locale=C.UTF-8',
        '--no-sync',
      ],
      { ...owner, cwd: parent },
    );
    const settings = [
      `listen_addresses = '127.0.0.1'`,
      `port = ${port}`,
      `unix_socket_directories = '${parent}'`,
      `max_connections = 200`,
      `shared_buffers = 256MB`,
      `max_wal_size = 4GB`,
      ...(opts.fast ? ['fsync = off', 'synchronous_commit = off', 'full_page_writes = off'] : []),
    ];
    await writeFile(join(dataDir, 'postgresql.auto.conf'), settings.join('\n') + '\n');
  }

  const child = spawn(join(install.binDir, 'postgres'), ['-D', dataDir, '-p', String(port)], {
    stdio: ['ignore', 'ignore', 'pipe'],
    cwd: parent,
    ...owner,
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));

  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`postgres exited during start-up:\n${stderr}`);
    const client = new pg.Client({ connectionString: url });
    try {
      await client.connect();
      await client.end();
      break;
    } catch {
      await client.end().catch(() => {});
      if (Date.now() > deadline)
        throw new Error(`postgres did not accept connections in 30s:\n${stderr}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  return {
    url,
    port,
    dataDir,
    install: chosen,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGINT'); // fast shutdown: aborts sessions, no checkpoint wait on a throwaway
        await exited;
      }
      if (ephemeral) await rm(parent, { recursive: true, force: true });
    },
  };
}
