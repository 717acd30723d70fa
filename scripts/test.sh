#!/usr/bin/env bash
# The README's test command (`npm test`): makes sure the machine is set up, runs the whole suite
# against real PostgreSQL, S3 and Temporal servers, and ends with one plain summary line.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1
mkdir -p .tools
report=.tools/vitest-report.json
rm -f "$report"
npx vitest run --reporter=default --reporter=json --outputFile.json="$report" "$@"
status=$?
if [ -f "$report" ]; then
  node -e '
    const r = require(process.argv[1]);
    const skipped = r.numPendingTests + r.numTodoTests;
    console.log(`${r.numPassedTests} passed, ${r.numFailedTests} failed` + (skipped ? `, ${skipped} skipped` : ""));
    if (r.numTotalTests === 0) process.exitCode = 1;
  ' "$PWD/$report" || status=1
else
  echo "0 passed, 1 failed"
  status=1
fi
exit $status
