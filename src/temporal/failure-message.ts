/**
 * The message of the innermost cause of a failure. Activity and child-workflow failures wrap the
 * real error (ActivityFailure → ApplicationFailure → …); a human wants to read the last one.
 * Pure, no imports: workflow code uses it too.
 */
export function innermostMessage(err: unknown): string {
  let e = err as { message?: string; cause?: unknown } | undefined;
  while (e?.cause) e = e.cause as typeof e;
  return e?.message ?? String(err);
}
