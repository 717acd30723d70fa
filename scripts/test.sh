#!/usr/bin/env bash
# The README's test command (`npm test`): makes sure the machine is set up, runs the whole suite
# against real PostgreSQL, S3 and Temporal servers, and ends with one plain summary line.
#
#   npm test [-- vitest args]    the suite (or the given files) on CUTOVER_TEST_PG, default the newest major
#   npm test -- --matrix         the whole suite on the newest major, then MATRIX_FILES on each
#                                older supported major (CI runs this)
#
# Majors run one after another. A run keeps two vitest workers going, one of them mostly on the
# blue-green workflow file; a second major beside it would compete for the same two cores and
# stretch the timing-sensitive tests (writers racing the backfill, hot keys for 15 s), for a gain
# the CI budget does not need.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1
reports=.tools/reports
rm -rf "$reports"
mkdir -p "$reports"

# What runs on every older major: the tests of behaviour that can differ between majors (catalog
# reads, DDL, triggers, isolation, dump/restore, the data-plane SQL) and the blue-green workflow
# end to end on the time-skipping server. Not here: CLI and end-to-end files (process spawning
# over the same code paths), pure tests, and workflow tests whose SQL the files here already run
# (the deploy workflow: migrate/runner and backup) or that test Temporal-side behaviour (retries,
# timeouts, replay); the whole-suite run on the newest major covers those once.
# docs/postgres-versions.md lists the same files.
MATRIX_FILES=(
  tests/db/server-version.test.ts
  tests/migrate/runner.test.ts
  tests/plan/plan.test.ts tests/plan/preflight.test.ts tests/plan/run-settings.test.ts
  tests/plan/shadow.test.ts
  tests/steps/validate.test.ts tests/steps/errors.test.ts
  tests/sync/sync-triggers.test.ts tests/sync/isolation.test.ts
  tests/backfill/backfill.test.ts
  tests/verify/verify.test.ts
  tests/expand/expand.test.ts
  tests/batch/batch.test.ts
  tests/backup/local.test.ts tests/backup/s3.test.ts tests/backup/activity.test.ts
  tests/swap/dependents.test.ts tests/swap/router.test.ts
  tests/swap/lock-patterns.test.ts tests/swap/two-sided.test.ts
  tests/router/route.test.ts
  tests/monitor/checks.test.ts
  tests/workflow/blue-green.test.ts
)
OLDER_MAJORS=${CUTOVER_TEST_MAJORS:-13 14 15 16 17}

status=0
# run_suite LABEL MAJOR [vitest args...]; MAJOR empty = CUTOVER_TEST_PG as given (default newest).
run_suite() {
  local label=$1 major=$2
  shift 2
  local started=$SECONDS code=0
  if [ -n "$major" ]; then
    CUTOVER_TEST_PG=$major npx vitest run --reporter=default --reporter=json \
      --outputFile.json="$reports/$label.json" "$@" || code=$?
  else
    npx vitest run --reporter=default --reporter=json \
      --outputFile.json="$reports/$label.json" "$@" || code=$?
  fi
  [ "$code" = 0 ] || status=1
  echo "$code" >"$reports/$label.exit"
  echo "$((SECONDS - started))" >"$reports/$label.seconds"
}

if [ "${1:-}" = "--matrix" ]; then
  shift
  run_suite "pg18-all" 18 "$@"
  for m in $OLDER_MAJORS; do run_suite "pg$m" "$m" "${MATRIX_FILES[@]}"; done
else
  run_suite "run" "" "$@"
fi

# Per-run lines first (worded so that only the last line reads as the summary), then the sum.
node -e '
  const { readdirSync, readFileSync, existsSync } = require("node:fs");
  const dir = process.argv[1];
  const labels = readdirSync(dir).filter((f) => f.endsWith(".seconds")).map((f) => f.slice(0, -8)).sort();
  let passed = 0, failed = 0, skipped = 0, bad = false;
  for (const label of labels) {
    const secs = readFileSync(`${dir}/${label}.seconds`, "utf8").trim();
    const file = `${dir}/${label}.json`;
    if (!existsSync(file)) {
      console.log(`${label}: no report (vitest did not finish), ${secs}s`);
      failed += 1; bad = true;
      continue;
    }
    const r = JSON.parse(readFileSync(file, "utf8"));
    const s = r.numPendingTests + r.numTodoTests;
    if (r.numTotalTests === 0) bad = true;
    // vitest fails a run on an error outside any test (an unhandled rejection, a failed
    // import) while its report counts no failed test: count that run as one failure.
    const code = readFileSync(`${dir}/${label}.exit`, "utf8").trim();
    const outside = code !== "0" && r.numFailedTests === 0 ? 1 : 0;
    passed += r.numPassedTests; failed += r.numFailedTests + outside; skipped += s;
    if (outside) console.log(`${label}: vitest exited with ${code}: errors outside the tests (see above)`);
    if (labels.length > 1)
      console.log(`${label}: ${r.numTotalTests} tests run, ${r.numPassedTests} ok, ${r.numFailedTests} not ok in ${secs}s`);
    // Name every failure again here, at the end: a CI log is often read from its tail only.
    for (const f of r.testResults ?? []) {
      for (const a of f.assertionResults ?? []) {
        if (a.status !== "failed") continue;
        const why = String((a.failureMessages ?? [])[0] ?? "").split("\n").slice(0, 3).join(" | ").slice(0, 400);
        console.log(`${label}: not ok: ${f.name.replace(process.cwd() + "/", "")} > ${a.fullName}: ${why}`);
      }
    }
  }
  console.log(`${passed} passed, ${failed} failed` + (skipped ? `, ${skipped} skipped` : ""));
  if (bad || failed > 0) process.exitCode = 1;
' "$PWD/$reports" || status=1
exit $status
