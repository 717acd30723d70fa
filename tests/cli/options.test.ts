/**
 * Options belong to the command they are typed after: `deploy --to` (apply up to a version) and
 * `deploy rollback --to` (go back to one) share a name, and --verbose works wherever it is typed.
 */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { cliPath } from '../support/cli';

function cutover(args: string[]) {
  const r = spawnSync(process.execPath, [cliPath, ...args], {
    encoding: 'utf8',
    // Nothing listens there: a command that parsed its options fails at the connection.
    env: { ...process.env, TEMPORAL_ADDRESS: '127.0.0.1:1', DATABASE_URL: '' },
    timeout: 60_000,
  });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

describe('command-line options', () => {
  it('deploy rollback takes its own --to, not deploy’s', () => {
    const r = cutover(['deploy', 'rollback', '--to', '1']);
    expect(r.out).not.toContain("required option '--to <version>' not specified");
    expect(r.out).toContain('cannot reach Temporal at 127.0.0.1:1');
    expect(r.code).toBe(1);
  });

  it('--verbose works before and after the command, and on nested commands', () => {
    for (const args of [
      ['--verbose', 'migrate'],
      ['migrate', '--verbose'],
      ['deploy', 'rollback', '--to', '1', '--verbose'],
    ]) {
      const r = cutover(args);
      expect(r.code, args.join(' ')).toBe(1);
      // The stack trace is what --verbose adds to the one-line error.
      expect(r.out, args.join(' ')).toMatch(/^UserError: /m);
    }
    expect(cutover(['migrate']).out).not.toMatch(/^UserError: /m);
  });
});
