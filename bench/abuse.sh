#!/usr/bin/env bash
# The API and kvnetd's process under abuse, at full size: crates/daemon/tests/abuse.rs
# (whose default sizes ./test.sh runs) with larger ones, release build, figures printed
# (RELIABILITY.md quotes them). Root only; every kvnetd runs in a namespace of its own.
#   bench/abuse.sh [--idle N] [--replies N] [--restarts N]
set -euo pipefail
cd "$(dirname "$0")/.."
IDLE=10000 REPLIES=100000 RESTARTS=50
while [ $# -gt 0 ]; do
  case "$1" in
    --idle) IDLE=$2; shift 2 ;;
    --replies) REPLIES=$2; shift 2 ;;
    --restarts) RESTARTS=$2; shift 2 ;;
    *) echo "usage: $0 [--idle N] [--replies N] [--restarts N]" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "bench needs root (network namespaces)" >&2; exit 1; }
# The tests run the release kvnetd, kvnet-ifup … next to the test binary.
nice -n 10 cargo build --release --locked -q --workspace --bins
echo "kvnet $(git describe --always --dirty 2>/dev/null || echo '?'), $(date -u +%F), $(nproc) cores, kernel $(uname -r)"
echo "idle connections $IDLE, requests of the client that never reads $REPLIES, restarts $RESTARTS"
echo
KVNET_ABUSE_IDLE=$IDLE KVNET_ABUSE_REPLIES=$REPLIES KVNET_ABUSE_RESTARTS=$RESTARTS \
  cargo test --release --locked -q -p kvnet-daemon --test abuse -- --include-ignored \
  --nocapture --test-threads 1 2>&1 | grep -v '^running\|^$'
