#!/usr/bin/env bash
# The project's test command (README, CI): builds and starts the real test environment,
# runs every test including the e2e ones, and always stops the environment again.
set -euo pipefail
cd "$(dirname "$0")/.."

# An environment this script did not start (a developer's) is left running.
state="${PODTRACE_TESTENV_DIR:-$PWD/.testenv}"
started=1
[[ -f "$state/env.json" ]] && started=0
cleanup() {
  local rc=$?
  if ((started)); then tests/env/down.sh || true; fi
  exit $rc
}
trap cleanup EXIT INT TERM
# Every component, including the tools only tests use (helm, prometheus, dashboard-check);
# cached ones are a no-op.
tests/env/build.sh
tests/env/up.sh

cargo test --features e2e "$@"
