#!/usr/bin/env bash
# The README's main command (`npm run demo`): sets the machine up, then runs the demo on an
# embedded throwaway PostgreSQL (and, for blue-green changes, the embedded Temporal dev server).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec node --import tsx scripts/demo.ts "$@"
