/**
 * No Docker engine runs here, so docker-compose.yml and the Dockerfile are checked structurally:
 * images are pinned, builds point at real files, the worker's environment is what the code reads
 * (fed through the real config functions), ports do not collide, dependencies exist, and the
 * one-shot jobs create what the worker needs (bucket, namespace, search attributes).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { connectionUrl } from '../../src/db/connect';
import { s3ClientConfig, storageFromEnv } from '../../src/storage/config';
import { S3Storage } from '../../src/storage/s3';
import { temporalSettings } from '../../src/temporal/connection';
import { projectRoot } from '../../src/tools';
import {
  planSearchAttribute,
  stageSearchAttribute,
  tableSearchAttribute,
} from '../../workflows/definitions';

interface Service {
  image?: string;
  build?: string | { context?: string; dockerfile?: string };
  environment?: Record<string, string | number | boolean> | string[];
  depends_on?: string[] | Record<string, { condition?: string }>;
  ports?: Array<string | { published?: string | number; target?: number }>;
  command?: string | string[];
  entrypoint?: string | string[];
  configs?: Array<string | { source: string; target?: string }>;
  volumes?: string[];
  restart?: string;
  healthcheck?: unknown;
}
interface Compose {
  services: Record<string, Service>;
  configs?: Record<string, { content?: string; file?: string }>;
  volumes?: Record<string, unknown>;
}

const read = (file: string) => readFileSync(join(projectRoot, file), 'utf8');
const compose = parse(read('docker-compose.yml')) as Compose;
const services = compose.services;

function envOf(name: string): Record<string, string> {
  const env = services[name]?.environment ?? {};
  if (Array.isArray(env))
    return Object.fromEntries(
      env.map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
    );
  return Object.fromEntries(Object.entries(env).map(([k, v]) => [k, String(v)]));
}
function dependsOn(s: Service): Record<string, string | undefined> {
  if (!s.depends_on) return {};
  if (Array.isArray(s.depends_on))
    return Object.fromEntries(s.depends_on.map((d) => [d, undefined]));
  return Object.fromEntries(Object.entries(s.depends_on).map(([k, v]) => [k, v.condition]));
}
function script(s: Service): string {
  const parts = [s.entrypoint ?? [], s.command ?? []].flat();
  return parts.join('\n');
}
/** Services running one image (by repository, tag ignored). */
function servicesWithImage(repo: string): string[] {
  return Object.keys(services).filter((n) => services[n]!.image?.split(':')[0] === repo);
}
function one(repo: string): string {
  const found = servicesWithImage(repo);
  expect(found, `exactly one service runs ${repo}`).toHaveLength(1);
  return found[0]!;
}

/** Names of environment variables a source file reads (env.X, env['X'], read('X')). */
function envNamesReadBy(file: string): Set<string> {
  const text = read(file);
  const names = new Set<string>();
  for (const m of text.matchAll(/\benv\.([A-Z][A-Z0-9_]+)/g)) names.add(m[1]!);
  for (const m of text.matchAll(/\b(?:env|read)\(?\[?'([A-Z][A-Z0-9_]+)'/g)) names.add(m[1]!);
  // A name chosen first and read after, e.g. `const key = … ? 'CUTOVER_DATABASE_URL' : 'DATABASE_URL'`.
  for (const m of text.matchAll(/'([A-Z][A-Z0-9]*_[A-Z0-9_]*URL)'/g)) names.add(m[1]!);
  return names;
}

describe('docker-compose.yml services', () => {
  it('has the whole local stack of docs/design.md', () => {
    for (const repo of [
      'temporalio/server',
      'temporalio/ui',
      'temporalio/admin-tools',
      'minio/minio',
      'minio/mc',
      'postgres',
    ])
      expect(servicesWithImage(repo).length, repo).toBeGreaterThan(0);
    // Temporal's database and the application's are separate servers.
    expect(servicesWithImage('postgres').length).toBe(2);
    expect(services.worker?.build).toBeDefined();
  });

  it('pins every image to a version (no latest, no bare name) and builds only from real files', () => {
    for (const [name, s] of Object.entries(services)) {
      expect(s.image ?? s.build, `${name} needs an image or a build`).toBeDefined();
      if (s.build) {
        const b = typeof s.build === 'string' ? { context: s.build } : s.build;
        const context = join(projectRoot, b.context ?? '.');
        expect(existsSync(context), `${name}: build context ${context}`).toBe(true);
        expect(existsSync(join(context, b.dockerfile ?? 'Dockerfile'))).toBe(true);
        continue;
      }
      const [repo, tag] = s.image!.split(':');
      expect(repo, name).toMatch(/^[a-z0-9]+(?:[._/-][a-z0-9]+)*$/);
      expect(tag, `${name}: ${s.image} must carry a tag`).toBeTruthy();
      expect(tag, `${name}: ${s.image}`).not.toMatch(/^latest$/i);
      expect(tag, `${name}: ${s.image}`).toMatch(/\d/);
    }
  });

  it('does not use the deprecated temporalio/auto-setup image', () => {
    expect(servicesWithImage('temporalio/auto-setup')).toEqual([]);
  });

  it('pins Temporal server and admin-tools to the same version', () => {
    const tags = new Set(
      [
        ...servicesWithImage('temporalio/server'),
        ...servicesWithImage('temporalio/admin-tools'),
      ].map((n) => services[n]!.image!.split(':')[1]),
    );
    expect(tags.size).toBe(1);
  });

  it('publishes no host port twice', () => {
    const seen = new Map<string, string>();
    for (const [name, s] of Object.entries(services)) {
      for (const p of s.ports ?? []) {
        const published =
          typeof p === 'string' ? p.split(':').slice(0, -1).join(':') : String(p.published ?? '');
        expect(published, `${name}: publish ${JSON.stringify(p)} to a fixed host port`).not.toBe(
          '',
        );
        expect(seen.get(published), `host port ${published} of ${name}`).toBeUndefined();
        seen.set(published, name);
      }
    }
    // The worker is scaled with --scale: a fixed host port would stop the second replica.
    expect(services.worker?.ports ?? []).toEqual([]);
  });

  it('depends only on services that exist, with conditions those services can meet', () => {
    for (const [name, s] of Object.entries(services)) {
      for (const [target, condition] of Object.entries(dependsOn(s))) {
        const t = services[target];
        expect(t, `${name} depends on missing service ${target}`).toBeDefined();
        if (condition === 'service_healthy')
          expect(t!.healthcheck, `${target} needs a healthcheck for ${name}`).toBeDefined();
        if (condition === 'service_completed_successfully')
          expect(t!.restart ?? 'no', `${target} is a one-shot job`).not.toMatch(/always|unless/);
        if (condition)
          expect(condition).toMatch(
            /^(service_started|service_healthy|service_completed_successfully)$/,
          );
      }
    }
  });

  it('has no dependency cycle', () => {
    const state = new Map<string, 'visiting' | 'done'>();
    const visit = (n: string, path: string[]) => {
      expect(state.get(n), `cycle: ${[...path, n].join(' -> ')}`).not.toBe('visiting');
      if (state.get(n) === 'done') return;
      state.set(n, 'visiting');
      for (const d of Object.keys(dependsOn(services[n]!))) visit(d, [...path, n]);
      state.set(n, 'done');
    };
    for (const n of Object.keys(services)) visit(n, []);
  });

  it('declares the named volumes and configs it mounts', () => {
    for (const [name, s] of Object.entries(services)) {
      for (const v of s.volumes ?? []) {
        const source = v.split(':')[0]!;
        if (!source.startsWith('.') && !source.startsWith('/'))
          expect(compose.volumes, `${name} mounts volume ${source}`).toHaveProperty(source);
      }
      for (const c of s.configs ?? []) {
        const source = typeof c === 'string' ? c : c.source;
        expect(compose.configs?.[source], `${name} uses config ${source}`).toBeDefined();
      }
    }
  });

  it('points the Temporal server at its own database with matching credentials', () => {
    const server = one('temporalio/server');
    const env = envOf(server);
    expect(env.DB).toBe('postgres12');
    const db = services[env.POSTGRES_SEEDS!];
    expect(db?.image, `POSTGRES_SEEDS=${env.POSTGRES_SEEDS} names the Temporal DB service`).toMatch(
      /^postgres:/,
    );
    const dbEnv = envOf(env.POSTGRES_SEEDS!);
    expect(env.POSTGRES_USER).toBe(dbEnv.POSTGRES_USER);
    expect(env.POSTGRES_PWD).toBe(dbEnv.POSTGRES_PASSWORD);
    expect(env.POSTGRES_SEEDS).not.toBe(appDbService());
    // The schema job prepares exactly the databases the server opens.
    const schemaJob = Object.keys(dependsOn(services[server]!)).find((d) =>
      script(services[d]!).includes('temporal-sql-tool'),
    );
    expect(schemaJob, 'the server waits for a schema job').toBeDefined();
    const setup = script(services[schemaJob!]!);
    for (const dbName of [env.DBNAME ?? 'temporal', env.VISIBILITY_DBNAME ?? 'temporal_visibility'])
      expect(setup).toContain(dbName);
    expect(setup).toContain(`--ep ${env.POSTGRES_SEEDS}`);
    expect(envOf(schemaJob!).SQL_PASSWORD).toBe(dbEnv.POSTGRES_PASSWORD);
    expect(setup).toMatch(/update-schema -d \$\$schema\/temporal\/versioned/);
    expect(setup).toMatch(/update-schema -d \$\$schema\/visibility\/versioned/);
    // The dynamic config file the server reads is the one mounted from `configs`.
    const mounted = (services[server]!.configs ?? []).map((c) =>
      typeof c === 'string' ? `/${c}` : c.target,
    );
    expect(mounted).toContain(env.DYNAMIC_CONFIG_FILE_PATH);
  });

  it('registers cutover’s search attributes as Keyword after the namespace exists', () => {
    const names = [planSearchAttribute, tableSearchAttribute, stageSearchAttribute].map(
      (k) => k.name,
    );
    const job = Object.keys(services).find((n) =>
      script(services[n]!).includes('search-attribute create'),
    );
    expect(job).toBeDefined();
    const s = script(services[job!]!);
    expect(s).toMatch(/temporal operator search-attribute create --name "\$\$name" --type Keyword/);
    expect(s).toMatch(new RegExp(`for name in ${names.join(' ')}; do`));
    expect(envOf(job!).TEMPORAL_ADDRESS).toBe(`${one('temporalio/server')}:7233`);
    const namespaceJob = Object.keys(dependsOn(services[job!]!)).find((d) =>
      script(services[d]!).includes('namespace create'),
    );
    expect(namespaceJob, 'search attributes are created after the namespace').toBeDefined();
    expect(envOf(namespaceJob!).TEMPORAL_NAMESPACE).toBe(envOf('worker').TEMPORAL_NAMESPACE);
  });

  it('gives the Web UI the Temporal frontend address', () => {
    const ui = one('temporalio/ui');
    expect(envOf(ui).TEMPORAL_ADDRESS).toBe(`${one('temporalio/server')}:7233`);
    // Published on 8233, the port printed links default to (TEMPORAL_UI_URL).
    expect(services[ui]!.ports).toContain('8233:8080');
  });
});

function appDbService(): string {
  return new URL(envOf('worker').DATABASE_URL!).hostname;
}

describe('the worker service', () => {
  const env = envOf('worker');

  it('sets only variables the code reads (no typos)', () => {
    const known = new Set([
      ...envNamesReadBy('src/db/connect.ts'),
      ...envNamesReadBy('src/storage/config.ts'),
      ...envNamesReadBy('src/temporal/connection.ts'),
    ]);
    // The extraction itself works: it finds names we know are read.
    for (const n of [
      'DATABASE_URL',
      'CUTOVER_BACKUP_S3_ENDPOINT',
      'TEMPORAL_ADDRESS',
      'TEMPORAL_TLS_CERT',
    ])
      expect(known).toContain(n);
    for (const name of Object.keys(env))
      expect(known, `${name} is read by the code`).toContain(name);
  });

  it('reaches the application database service with its credentials', () => {
    const url = new URL(connectionUrl('default', env));
    const db = services[url.hostname];
    expect(db?.image, `DATABASE_URL host ${url.hostname} is a service`).toMatch(/^postgres:/);
    const dbEnv = envOf(url.hostname);
    expect(url.port || '5432').toBe('5432'); // the container port, not the published one
    expect(decodeURIComponent(url.username)).toBe(dbEnv.POSTGRES_USER);
    expect(decodeURIComponent(url.password)).toBe(dbEnv.POSTGRES_PASSWORD);
    expect(url.pathname.slice(1)).toBe(dbEnv.POSTGRES_DB);
    expect(dependsOn(services.worker!)[url.hostname]).toBe('service_healthy');
  });

  it('connects to the Temporal service and namespace', () => {
    const s = temporalSettings(env);
    const [host, port] = s.address.split(':');
    expect(services[host!]?.image).toMatch(/^temporalio\/server:/);
    expect(port).toBe('7233');
    expect(s.namespace).toBe('default');
    expect(s.tls).toBeUndefined();
  });

  it('backs up to the MinIO bucket the init job creates, with MinIO’s credentials', () => {
    const storage = storageFromEnv(env);
    expect(storage).toBeInstanceOf(S3Storage);
    expect(env.CUTOVER_BACKUP_TARGET).toBe('s3');
    const s3 = storage as S3Storage;
    const config = s3ClientConfig(env);
    const endpoint = new URL(String(config.endpoint));
    const minio = one('minio/minio');
    expect(endpoint.hostname).toBe(minio);
    expect(endpoint.port).toBe('9000');
    expect(config.forcePathStyle).toBe(true);
    const minioEnv = envOf(minio);
    expect(config.credentials).toEqual({
      accessKeyId: minioEnv.MINIO_ROOT_USER,
      secretAccessKey: minioEnv.MINIO_ROOT_PASSWORD,
    });
    const init = one('minio/mc');
    const initEnv = envOf(init);
    expect(initEnv.BUCKET).toBe(s3.bucket);
    expect(script(services[init]!)).toContain(`mc alias set local http://${minio}:9000`);
    expect(script(services[init]!)).toContain('mc mb --ignore-existing "local/$$BUCKET"');
    expect(initEnv.MINIO_ROOT_USER).toBe(minioEnv.MINIO_ROOT_USER);
    expect(dependsOn(services.worker!)[init]).toBe('service_completed_successfully');
  });

  it('starts after the search attributes exist', () => {
    const deps = dependsOn(services.worker!);
    const saJob = Object.keys(deps).find((d) =>
      script(services[d]!).includes('search-attribute create'),
    );
    expect(saJob && deps[saJob]).toBe('service_completed_successfully');
  });
});

describe('Dockerfile', () => {
  const lines = read('Dockerfile')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  const instr = (name: string) => lines.filter((l) => l.toUpperCase().startsWith(`${name} `));

  it('builds on a pinned Node 20 image that satisfies package.json engines', () => {
    const from = instr('FROM');
    expect(from).toHaveLength(1);
    const m = /^FROM node:(\d+)\.(\d+)\.(\d+)-/.exec(from[0]!);
    expect(m, from[0]).not.toBeNull();
    const [major, minor] = [Number(m![1]), Number(m![2])];
    expect(major).toBe(20);
    const engines = (JSON.parse(read('package.json')) as { engines: { node: string } }).engines
      .node;
    const [, eMajor, eMinor] = /(\d+)\.(\d+)/.exec(engines)!;
    expect(major > Number(eMajor) || minor >= Number(eMinor!)).toBe(true);
  });

  it('installs with npm ci from the lockfile and brings pg_dump for backups', () => {
    expect(instr('COPY').some((l) => /package-lock\.json/.test(l))).toBe(true);
    expect(instr('RUN').some((l) => /\bnpm ci\b/.test(l))).toBe(true);
    expect(lines.join('\n')).toMatch(/postgresql-client/);
  });

  it('copies every directory the worker imports from', () => {
    const copied = instr('COPY').map((l) => l.split(/\s+/)[1]);
    for (const dir of ['bin', 'src', 'workflows', 'activities']) {
      expect(copied).toContain(dir);
      expect(existsSync(join(projectRoot, dir))).toBe(true);
    }
  });

  it('runs the worker in exec form as a non-root user', () => {
    const cmd = instr('CMD');
    expect(cmd).toHaveLength(1);
    expect(JSON.parse(cmd[0]!.slice(4))).toEqual(['node', 'bin/cutover.js', 'worker']);
    expect(instr('USER')).toEqual(['USER node']);
  });

  it('.dockerignore keeps heavy and local files out but not what the image copies', () => {
    const ignored = read('.dockerignore')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#'));
    for (const p of ['node_modules', '.git', '.tools', '.cutover']) expect(ignored).toContain(p);
    const copied = instr('COPY').flatMap((l) => l.split(/\s+/).slice(1, -1));
    for (const c of copied)
      expect(ignored, `${c} is copied, so it must not be ignored`).not.toContain(c);
  });
});
