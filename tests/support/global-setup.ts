import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { TestProject } from 'vitest/node';
import { startLocalCluster, type LocalCluster } from '../../src/db/local-cluster';
import { startS3Server, type S3Server } from './s3-server';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Superuser URL of a server where each test file may create its own database. */
    pgAdminUrl: string;
    s3: { endpoint: string; accessKeyId: string; secretAccessKey: string; bucket: string };
  }
}

let cluster: LocalCluster | undefined;
let s3: S3Server | undefined;

/**
 * Starts one throwaway PostgreSQL cluster and one S3-compatible server for the whole run (each
 * test file then makes its own database and bucket prefix). DATABASE_URL, when set, points the
 * tests at an existing server instead.
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
  if (process.env.DATABASE_URL) {
    project.provide('pgAdminUrl', process.env.DATABASE_URL);
  } else {
    cluster = await startLocalCluster({ fast: true });
    project.provide('pgAdminUrl', cluster.url);
  }
  s3 = await startS3Server();
  project.provide('s3', s3.config);
}

export async function teardown(): Promise<void> {
  await Promise.allSettled([cluster?.stop(), s3?.stop()]);
}
