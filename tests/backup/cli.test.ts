import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../../src/tools';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { tableDigest } from './helpers';

const exec = promisify(execFile);
let source: TestDatabase;
let target: TestDatabase;
let dir: string;

async function cutover(
  args: string[],
  extraEnv: NodeJS.ProcessEnv = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await exec('node', [join(projectRoot, 'bin/cutover.js'), ...args], {
      cwd: dir,
      env: { ...process.env, DATABASE_URL: source.url, CUTOVER_BACKUP_DIR: dir, ...extraEnv },
    });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

beforeAll(async () => {
  source = await createTestDatabase('bk_cli_src');
  target = await createTestDatabase('bk_cli_dst');
  dir = await mkdtemp(join(tmpdir(), 'cutover-cli-backups-'));
  await source.pool.query(`
    CREATE TABLE items (id int PRIMARY KEY, name text);
    INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 500) g;
  `);
});

afterAll(async () => {
  await Promise.all([source?.drop(), target?.drop()]);
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('cutover backup CLI', () => {
  it('creates, lists and restores a backup, refusing to overwrite without --force', async () => {
    const created = await cutover([
      'backup',
      'create',
      '--table',
      'items',
      '--label',
      'cli',
      '--json',
    ]);
    expect(created.stderr).toBe('');
    expect(created.code).toBe(0);
    const { id } = JSON.parse(created.stdout) as { id: string };

    const listed = await cutover(['backup', 'list']);
    expect(listed.code).toBe(0);
    expect(listed.stdout).toMatch(/^ID\s+CREATED\s+SIZE/);
    expect(listed.stdout).toContain(id);
    const asJson = JSON.parse((await cutover(['backup', 'list', '--json'])).stdout);
    expect(asJson[0].tables).toEqual(['public.items']);

    const restored = await cutover(['backup', 'restore', id, '--target-url', target.url]);
    expect(restored.code).toBe(0);
    expect(restored.stdout).toContain(`restored ${id}`);
    expect(await tableDigest(target.pool, 'items')).toEqual(
      await tableDigest(source.pool, 'items'),
    );

    const refused = await cutover(['backup', 'restore', id], { DATABASE_URL: target.url });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^error: refusing to restore .*--force/);

    await target.pool.query('DELETE FROM items');
    const forced = await cutover(['backup', 'restore', id, '--force'], {
      DATABASE_URL: target.url,
    });
    expect(forced.code).toBe(0);
    expect(forced.stdout).toContain('replaced public.items');
    expect((await tableDigest(target.pool, 'items')).rows).toBe(500);
  });

  it('reports bad input with the right exit codes and documents the environment', async () => {
    const unknown = await cutover(['backup', 'restore', 'nope']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/unknown backup id "nope"/);
    const noTable = await cutover(['backup', 'create']);
    expect(noTable.code).toBe(2);
    const help = await cutover(['backup', 'restore', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('CUTOVER_BACKUP_TARGET');
    expect(help.stdout).toContain('--force');
    expect(help.stdout).toContain('Examples:');
  });
});
