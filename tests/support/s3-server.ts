import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../src/db/local-cluster';
import { toolPath } from '../../src/tools';

export interface S3Server {
  config: { endpoint: string; accessKeyId: string; secretAccessKey: string; bucket: string };
  stop(): Promise<void>;
}

/** A real S3-compatible server on loopback: `rclone serve s3` over a temp directory. */
export async function startS3Server(): Promise<S3Server> {
  const root = await mkdtemp(join(tmpdir(), 'cutover-s3-'));
  const bucket = 'cutover-test';
  await mkdir(join(root, bucket));
  const port = await freePort();
  const accessKeyId = 'cutover';
  const secretAccessKey = 'cutover-secret';
  const child = spawn(
    toolPath('rclone'),
    [
      'serve',
      's3',
      '--addr',
      `127.0.0.1:${port}`,
      '--auth-key',
      `${accessKeyId},${secretAccessKey}`,
      root,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  const deadline = Date.now() + 20_000;
  while (!(await canConnect(port))) {
    if (child.exitCode !== null) throw new Error(`rclone serve s3 exited:\n${stderr}`);
    if (Date.now() > deadline) throw new Error(`rclone serve s3 did not listen in 20s:\n${stderr}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    config: { endpoint: `http://127.0.0.1:${port}`, accessKeyId, secretAccessKey, bucket },
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      await rm(root, { recursive: true, force: true });
    },
  };
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((res) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => (s.destroy(), res(true)));
    s.once('error', () => res(false));
  });
}
