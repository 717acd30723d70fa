import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { HashingStream } from './hashing';
import { assertValidKey, ObjectNotFoundError, type BackupStorage, type PutResult } from './types';

/** In-flight writes carry this marker; list() skips them and a crash leaves only such files. */
const PARTIAL_MARK = '.partial-';

/**
 * Objects as files under a directory. A put writes `<file>.partial-<random>` and renames it into
 * place only after the source stream ended cleanly, so readers never see half an object.
 */
export class LocalDirStorage implements BackupStorage {
  readonly root: string;
  readonly description: string;

  constructor(root: string) {
    this.root = resolve(root);
    this.description = `local directory ${this.root}`;
  }

  localPath(key: string): string {
    assertValidKey(key);
    return join(this.root, ...key.split('/'));
  }

  async put(key: string, body: Readable, onProgress?: (bytes: number) => void): Promise<PutResult> {
    const file = this.localPath(key);
    await mkdir(dirname(file), { recursive: true, mode: 0o700 });
    const partial = `${file}${PARTIAL_MARK}${randomBytes(4).toString('hex')}`;
    const hashing = new HashingStream(onProgress);
    try {
      await pipeline(body, hashing, createWriteStream(partial, { flags: 'wx', mode: 0o600 }));
      await rename(partial, file);
    } catch (err) {
      await rm(partial, { force: true });
      throw err;
    }
    return { size: hashing.byteCount, sha256: hashing.sha256 };
  }

  async get(key: string): Promise<Readable> {
    const file = this.localPath(key);
    if (!(await this.exists(key))) throw new ObjectNotFoundError(key, this.description);
    return createReadStream(file);
  }

  async exists(key: string): Promise<boolean> {
    try {
      return (await stat(this.localPath(key))).isFile();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw err;
    }
  }

  async delete(key: string): Promise<void> {
    await rm(this.localPath(key), { force: true });
  }

  async list(prefix = ''): Promise<string[]> {
    const keys: string[] = [];
    const walk = async (dir: string): Promise<void> => {
      let entries;
      try {
        entries = await readdir(dir, { withFileTypes: true });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
        throw err;
      }
      for (const e of entries) {
        const full = join(dir, e.name);
        if (e.isDirectory()) await walk(full);
        else if (e.isFile() && !e.name.includes(PARTIAL_MARK)) {
          const key = relative(this.root, full).split(sep).join('/');
          if (key.startsWith(prefix)) keys.push(key);
        }
      }
    };
    await walk(this.root);
    return keys.sort();
  }
}
