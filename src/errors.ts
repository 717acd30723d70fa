/**
 * Errors the CLI prints as one line without a stack trace (unless --verbose): they describe
 * what the user asked for or the state they are in, not a bug in cutover.
 */
export class UserError extends Error {
  override name = 'UserError';
  constructor(
    message: string,
    /** Process exit code: 1 for a failure, 2 for a usage error. */
    readonly exitCode: 1 | 2 = 1,
  ) {
    super(message);
  }
}

/** Bad command-line input: exit code 2. */
export class UsageError extends UserError {
  override name = 'UsageError';
  constructor(message: string) {
    super(message, 2);
  }
}
