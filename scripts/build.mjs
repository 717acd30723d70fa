// Builds the CLI into dist/ (git-ignored) with esbuild: one ES module bundle of our own code,
// split at every dynamic import, with packages left in node_modules. Compiling the TypeScript
// through tsx at each start cost seconds; the bundle starts like plain node. Heavy packages
// (Temporal's worker and client, the AWS SDK, libpg-query, pg) sit behind dynamic imports, so
// only the commands that use them load them.
//
//   node scripts/build.mjs          build (also: npm run build; scripts/setup.sh runs it)
//   node scripts/build.mjs --check  exit 1 when dist/ is missing or older than the sources
import {
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
export const distDir = join(root, 'dist');
const stampPath = join(distDir, '.stamp.json');
// Everything the bundle is built from; package.json because the CLI prints its version.
const SOURCE_DIRS = ['src', 'workflows', 'activities'];
const SOURCE_FILES = ['package.json'];

/** Newest modification time (ms) of any source file: a stat per file, a few ms in all. */
export function newestSourceMtime() {
  let newest = 0;
  const see = (path) => {
    const m = statSync(path).mtimeMs;
    if (m > newest) newest = m;
  };
  for (const dir of SOURCE_DIRS) {
    for (const entry of readdirSync(join(root, dir), { recursive: true, withFileTypes: true })) {
      if (entry.isFile()) see(join(entry.parentPath ?? entry.path, entry.name));
    }
  }
  for (const file of SOURCE_FILES) see(join(root, file));
  return newest;
}

/** True when dist/ holds a build of the current sources. */
export function isFresh() {
  try {
    const stamp = JSON.parse(readFileSync(stampPath, 'utf8'));
    return typeof stamp.newest === 'number' && newestSourceMtime() <= stamp.newest;
  } catch {
    return false;
  }
}

export async function build() {
  // Read before building, so a file saved during the build makes the result stale, not fresh.
  const newest = newestSourceMtime();
  const { build: esbuild } = await import('esbuild');
  const result = await esbuild({
    absWorkingDir: root,
    entryPoints: { cli: 'src/cli/main.ts' },
    outdir: distDir,
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    packages: 'external',
    sourcemap: 'linked',
    write: false,
    logLevel: 'warning',
  });
  // Another process may be running the CLI (or building) right now: each file is written under
  // a temporary name and renamed into place, chunks before the entry that imports them.
  mkdirSync(distDir, { recursive: true });
  const outputs = result.outputFiles.sort(
    (a, b) =>
      Number(basename(a.path).startsWith('cli.')) - Number(basename(b.path).startsWith('cli.')),
  );
  const tmpSuffix = `.tmp-${process.pid}`;
  for (const file of outputs) {
    writeFileSync(file.path + tmpSuffix, file.contents);
    renameSync(file.path + tmpSuffix, file.path);
  }
  const keep = new Set(outputs.map((f) => basename(f.path)));
  for (const name of readdirSync(distDir)) {
    if (!keep.has(name) && !name.startsWith('.')) rmSync(join(distDir, name), { force: true });
  }
  writeFileSync(stampPath + tmpSuffix, JSON.stringify({ newest }));
  renameSync(stampPath + tmpSuffix, stampPath);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  if (process.argv.includes('--check')) {
    process.exit(isFresh() ? 0 : 1);
  } else {
    await build();
  }
}
