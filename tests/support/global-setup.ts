import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import type { TestProject } from 'vitest/node';
import { startLocalCluster, type LocalCluster } from '../../src/db/local-cluster';
import { serverInstall } from '../../src/db/pg-installs';
import { readServerVersion } from '../../src/db/server-version';
import { startS3Server, type S3Server } from './s3-server';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Superuser URL of a server where each test file may create its own database. */
    pgAdminUrl: string;
    /** Major of the server under test (CUTOVER_TEST_PG, or whatever DATABASE_URL points at). */
    pgMajor: number;
    s3: { endpoint: string; accessKeyId: string; secretAccessKey: string; bucket: string };
  }
}

let cluster: LocalCluster | undefined;
let s3: S3Server | undefined;

/**
 * Starts one throwaway PostgreSQL cluster and one S3-compatible server for the whole run (each
 * test file then makes its own database and bucket prefix). CUTOVER_TEST_PG picks the server's
 * major (13 … 18, default the newest; `debian` for Debian's server); DATABASE_URL, when set,
 * points the tests at an existing server instead.
 */
export async function setup(project: TestProject): Promise<void> {
  // Tests that spawn bin/cutover.js run the built CLI: build it from the current sources first.
  execFileSync(
    process.execPath,
    [fileURLToPath(new URL('../../scripts/build.mjs', import.meta.url))],
    {
      stdio: 'inherit',
    },
  );
  const spec = process.env.CUTOVER_TEST_PG;
  let url: string;
  if (process.env.DATABASE_URL) {
    url = process.env.DATABASE_URL;
  } else {
    cluster = await startLocalCluster({ fast: true, install: serverInstall(spec) });
    url = cluster.url;
  }
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  const version = await readServerVersion(c).finally(() => c.end());
  // A run that claims to test a major must really have run on it.
  if (cluster && spec && spec !== 'debian' && version.major !== Number(spec)) {
    throw new Error(`CUTOVER_TEST_PG=${spec} but the server is PostgreSQL ${version.text}`);
  }
  process.stderr.write(
    `tests run on PostgreSQL ${version.text}` +
      (cluster ? ` (${cluster.install.source})\n` : ' (DATABASE_URL)\n'),
  );
  project.provide('pgAdminUrl', url);
  project.provide('pgMajor', version.major);
  s3 = await startS3Server();
  project.provide('s3', s3.config);
}

export async function teardown(): Promise<void> {
  await Promise.allSettled([cluster?.stop(), s3?.stop()]);
}
