import { MockActivityEnvironment } from '@temporalio/testing';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  backupRun,
  listBackups,
  type BackupRunInput,
  type BackupSummary,
} from '../../src/backup/backup';

import { LocalDirStorage } from '../../src/storage';
import { createTestDatabase, type TestDatabase } from '../support/db';

// The worker calls activities with their single input argument, exactly like this.
const activity = (input: BackupRunInput) => backupRun(input);

let source: TestDatabase;
let dir: string;
const saved = { DATABASE_URL: process.env.DATABASE_URL, DIR: process.env.CUTOVER_BACKUP_DIR };

beforeAll(async () => {
  source = await createTestDatabase('bk_act');
  await source.pool.query(`
    CREATE TABLE big (id int PRIMARY KEY, body text NOT NULL);
    INSERT INTO big SELECT g, repeat(md5(g::text), 8) FROM generate_series(1, 20000) g;
  `);
  dir = await mkdtemp(join(tmpdir(), 'cutover-act-backups-'));
  // Inside a worker the activity sees only its single argument: everything else is environment.
  process.env.DATABASE_URL = source.url;
  process.env.CUTOVER_BACKUP_DIR = dir;
});

afterAll(async () => {
  process.env.DATABASE_URL = saved.DATABASE_URL;
  process.env.CUTOVER_BACKUP_DIR = saved.DIR;
  await source?.drop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('backupRun as a Temporal activity', () => {
  it('heartbeats bytes written and returns a summary without secrets', async () => {
    const env = new MockActivityEnvironment();
    const beats: Array<{ phase: string; bytes: number }> = [];
    env.on('heartbeat', (d: { phase: string; bytes: number }) => beats.push(d));
    const summary: BackupSummary = await env.run(activity, {
      connection: 'default',
      tables: ['big'],
      label: 'activity',
    });
    expect(beats.length).toBeGreaterThan(0);
    expect(beats[0]!.phase).toBe('dump');
    expect(beats[0]!.bytes).toBeGreaterThan(0);
    expect(Object.keys(summary).sort()).toEqual(
      ['id', 'label', 'sha256', 'size', 'storage', 'tables'].sort(),
    );
    expect((await listBackups()).map((b) => b.id)).toContain(summary.id);
  });

  it('stops pg_dump when the activity is cancelled and keeps nothing', async () => {
    const storage = new LocalDirStorage(dir);
    const before = await storage.list();
    const env = new MockActivityEnvironment();
    env.once('heartbeat', () => env.cancel());
    await expect(
      env.run(activity, { connection: 'default', tables: ['big'], label: 'cancelled' }),
    ).rejects.toThrow(/backup cancelled .*partial dump was removed/);
    expect(await storage.list()).toEqual(before);
  });
});
