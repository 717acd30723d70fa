import { UserError } from '../errors';

let verbose = false;

export function setVerbose(v: boolean): void {
  verbose = v;
}

/**
 * Wraps a command's action: user errors print one line and exit with their code; anything else
 * is a bug or an outage, printed with its stack only under --verbose.
 */
export function action<A extends unknown[]>(
  fn: (...args: A) => Promise<void> | void,
): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await fn(...args);
    } catch (err) {
      reportError(err);
    }
  };
}

export function reportError(err: unknown): never {
  const e = err instanceof Error ? err : new Error(String(err));
  process.stderr.write(`error: ${e.message}\n`);
  if (verbose && e.stack) process.stderr.write(`${e.stack}\n`);
  else if (!(e instanceof UserError)) process.stderr.write('(run with --verbose for details)\n');
  process.exit(e instanceof UserError ? e.exitCode : 1);
}
