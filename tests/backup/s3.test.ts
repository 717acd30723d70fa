import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { backupRun, listBackups, restoreBackup } from '../../src/backup/backup';
import { MIN_PART_SIZE, S3Storage, storageFromEnv } from '../../src/storage';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { tableDigest, tableExists } from './helpers';

const s3 = inject('s3');
const prefix = `backup-test-${randomBytes(4).toString('hex')}`;
let source: TestDatabase;
let env: NodeJS.ProcessEnv;
let raw: S3Client;
const targets: TestDatabase[] = [];

async function freshTarget(): Promise<TestDatabase> {
  const t = await createTestDatabase('bk_s3_target');
  targets.push(t);
  return t;
}

beforeAll(async () => {
  source = await createTestDatabase('bk_s3_source');
  // ~50k rows of random hex: compresses to well over one 5 MiB part, so the upload is multipart.
  await source.pool.query(`
    CREATE TABLE documents (id int PRIMARY KEY, body text NOT NULL);
    INSERT INTO documents
      SELECT g, md5(random()::text) || md5(random()::text) || md5(random()::text) || md5(random()::text)
             || md5(random()::text) || md5(random()::text) || md5(random()::text) || md5(random()::text)
      FROM generate_series(1, 50000) g;
  `);
  // Everything about S3 comes from the environment, as it would on a worker.
  env = {
    ...process.env,
    DATABASE_URL: source.url,
    CUTOVER_BACKUP_TARGET: `s3://${s3.bucket}/${prefix}`,
    CUTOVER_BACKUP_S3_ENDPOINT: s3.endpoint,
    CUTOVER_BACKUP_S3_PART_SIZE_MB: '5',
    AWS_ACCESS_KEY_ID: s3.accessKeyId,
    AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
    AWS_REGION: 'us-east-1',
  };
  raw = new S3Client({
    endpoint: s3.endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
  });
});

afterAll(async () => {
  raw?.destroy();
  await Promise.all([source?.drop(), ...targets.map((t) => t.drop())]);
});

async function getText(key: string): Promise<string> {
  const r = await raw.send(new GetObjectCommand({ Bucket: s3.bucket, Key: key }));
  return r.Body!.transformToString();
}

describe('backup to an S3-compatible server', () => {
  it('streams a multipart dump to S3 and restores the same data', async () => {
    const expected = await tableDigest(source.pool, 'documents');
    const summary = await backupRun(
      { connection: 'default', tables: ['documents'], label: 's3 big' },
      { env },
    );
    expect(summary.size).toBeGreaterThan(MIN_PART_SIZE); // at least two parts
    expect(summary.storage).toBe(`s3://${s3.bucket}/${prefix}/ at ${s3.endpoint}`);

    const storage = storageFromEnv(env);
    expect(await storage.list()).toEqual([`${summary.id}.dump`, `${summary.id}.manifest.json`]);
    const manifestText = await getText(`${prefix}/${summary.id}.manifest.json`);
    expect(manifestText).not.toContain(s3.secretAccessKey);
    expect(manifestText).not.toContain(s3.accessKeyId);
    expect(JSON.parse(manifestText)).toMatchObject({ id: summary.id, sha256: summary.sha256 });

    expect((await listBackups({ env })).map((b) => b.id)).toEqual([summary.id]);

    const target = await freshTarget();
    await restoreBackup(summary.id, { targetUrl: target.url }, { env });
    expect(await tableDigest(target.pool, 'documents')).toEqual(expected);

    await expect(restoreBackup(summary.id, { targetUrl: target.url }, { env })).rejects.toThrow(
      /refusing to restore/,
    );
    await target.pool.query(`DELETE FROM documents WHERE id <= 100`);
    await restoreBackup(summary.id, { targetUrl: target.url, force: true }, { env });
    expect(await tableDigest(target.pool, 'documents')).toEqual(expected);
  });

  it('detects a dump changed in the bucket and restores nothing', async () => {
    await source.pool.query(`CREATE TABLE small (id int PRIMARY KEY, v text)`);
    await source.pool.query(`INSERT INTO small SELECT g, 'v' || g FROM generate_series(1, 100) g`);
    const summary = await backupRun(
      { connection: 'default', tables: ['small'], label: 'tamper' },
      { env },
    );
    const key = `${prefix}/${summary.id}.dump`;
    const original = Buffer.from(
      await (
        await raw.send(new GetObjectCommand({ Bucket: s3.bucket, Key: key }))
      ).Body!.transformToByteArray(),
    );
    const tampered = Buffer.from(original);
    tampered[tampered.length - 10] = tampered[tampered.length - 10]! ^ 0x01;
    await raw.send(new PutObjectCommand({ Bucket: s3.bucket, Key: key, Body: tampered }));

    const target = await freshTarget();
    await expect(restoreBackup(summary.id, { targetUrl: target.url }, { env })).rejects.toThrow(
      /checksum mismatch for backup/,
    );
    expect(await tableExists(target.pool, 'small')).toBe(false);
  });

  it('aborts the multipart upload of a dump that fails after several MiB', async () => {
    await source.pool.query(`CREATE TABLE fails_late (LIKE documents)`);
    await source.pool.query(`INSERT INTO fails_late SELECT * FROM documents ORDER BY id`);
    await source.pool.query(`INSERT INTO fails_late VALUES (50001, 'euro € sign')`);
    const storage = storageFromEnv(env);
    const keysBefore = await storage.list();
    let maxBytes = 0;
    await expect(
      backupRun(
        { connection: 'default', tables: ['fails_late'], label: 'fails late' },
        { env: { ...env, PGCLIENTENCODING: 'LATIN1' }, onProgress: (b) => (maxBytes = b) },
      ),
    ).rejects.toThrow(/pg_dump failed/);
    expect(maxBytes).toBeGreaterThan(MIN_PART_SIZE); // a part had been uploaded
    expect(await storage.list()).toEqual(keysBefore);
  });

  it('removes nothing else and lists nothing for a failed dump', async () => {
    const storage = new S3Storage({
      bucket: s3.bucket,
      prefix: `${prefix}-other`,
      client: {
        endpoint: s3.endpoint,
        region: 'us-east-1',
        forcePathStyle: true,
        credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
      },
    });
    await storage.put('keep.txt', Readable.from([Buffer.from('hello')]));
    await expect(
      backupRun({ connection: 'default', tables: ['missing_table'] }, { storage, env }),
    ).rejects.toThrow(/no matching tables were found/);
    expect(await storage.list()).toEqual(['keep.txt']);
    expect(await listBackups({ storage })).toEqual([]);
    expect(await storage.exists('keep.txt')).toBe(true);
    await storage.delete('keep.txt');
    expect(await storage.exists('keep.txt')).toBe(false);
    storage.close();
  });
});
