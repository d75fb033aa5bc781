#!/usr/bin/env bash
# Restarts only KWOK with the current tests/env/kwok.yaml and stages, for stage work on a
# running environment (a full down/up also works but resets the cluster).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
[[ -f "$STATE/env.json" ]] || die "test environment not running: run make testenv-up"
cmdline=$(tr '\0' ' ' <"/proc/$(pid_of kwok)/cmdline") || die "kwok is not running"
stop_proc kwok 15
write_kwok_config
# shellcheck disable=SC2086 # the recorded command line is a plain word list
start_proc kwok $cmdline
wait_until kwok 60 curl -sf "http://127.0.0.1:$KWOK_PORT/healthz"
# The previous instance's node Leases must expire (40 s) before the new one takes the
# nodes over; until then pods on them do not progress.
log "kwok reloaded; it manages the nodes once the old node Leases expire (up to 40 s)"
