/**
 * The demo: versioned migrations on a throwaway PostgreSQL cluster, driven through the real CLI
 * exactly as a user would type it. Everything it starts is stopped at the end.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { startLocalCluster } from '../src/db/local-cluster';

const cli = fileURLToPath(new URL('../bin/cutover.js', import.meta.url));

function cutover(args: string[], env: NodeJS.ProcessEnv): void {
  console.log(`\n$ cutover ${args.join(' ')}`);
  const r = spawnSync(process.execPath, [cli, ...args], { env, stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`cutover ${args.join(' ')} exited with ${r.status}`);
}

const cluster = await startLocalCluster({ fast: true });
console.log(`throwaway PostgreSQL running at ${cluster.url}`);
const env = { ...process.env, DATABASE_URL: cluster.url };
try {
  cutover(['migrate', '--dry-run', '--to', '0002'], env);
  cutover(['migrate', '--to', '0003'], env);
  const db = new pg.Client({ connectionString: cluster.url });
  await db.connect();
  await db.query(
    `INSERT INTO users (email, name) SELECT 'user' || g || '@example.com', 'User ' || g FROM generate_series(1, 1000) g`,
  );
  await db.end();
  console.log('\ninserted 1000 users');
  cutover(['migrate'], env);
  cutover(['status'], env);
  cutover(['rollback', '--steps', '2'], env);
  cutover(['status'], env);
  cutover(['migrate'], env);
  cutover(['validate'], env);
  console.log(
    '\ndemo finished: migrations applied, rolled back and re-applied with a checksummed history',
  );
} finally {
  await cluster.stop();
}
