import { UserError } from '../errors';
import { maskSecrets, safeMessage } from '../safe-text';

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

/**
 * The CLI's one error path. Every message goes through safeMessage: credentials masked,
 * non-printables escaped, length bounded, whatever code built it.
 */
export function reportError(err: unknown): never {
  const e = err instanceof Error ? err : new Error(String(err));
  process.stderr.write(`error: ${safeMessage(e.message)}\n`);
  if (verbose && e.stack) process.stderr.write(`${maskSecrets(e.stack)}\n`);
  else if (!(e instanceof UserError)) process.stderr.write('(run with --verbose for details)\n');
  process.exit(e instanceof UserError ? e.exitCode : 1);
}

/** A progress or warning line for stderr, masked like error messages. */
export function logLine(line: string): void {
  process.stderr.write(`${safeMessage(line, Infinity)}\n`);
}
