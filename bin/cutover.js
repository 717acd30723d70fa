#!/usr/bin/env node
// Runs the CLI built into dist/ (`npm run build`; scripts/setup.sh and the test setup run it), which
// starts like plain node. When dist/ is missing or older than the sources, it runs the TypeScript
// sources through tsx instead (seconds per start, but never stale code) and says so.
import { isFresh } from '../scripts/build.mjs';

if (isFresh()) {
  await import('../dist/cli.js');
} else {
  process.stderr.write(
    'cutover: dist/ is missing or older than the sources; running them through tsx (slow start). ' +
      '`npm run build` fixes that.\n',
  );
  const { register } = await import('tsx/esm/api');
  register();
  await import('../src/cli/main.ts');
}
