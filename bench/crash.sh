#!/usr/bin/env bash
# kill -9 at any instant, at full size: the campaign of crates/daemon/tests/crash.rs
# (whose short version ./test.sh runs) for ROUNDS rounds on one seed, release build.
# Every round is logged to target/crash-SEED.log; failures and the per-verb figures are
# printed (RELIABILITY.md quotes them). Root only; the lab runs in namespaces of its own.
#   bench/crash.sh [--rounds N] [--seed S]
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=120 SEED=
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS=$2; shift 2 ;;
    --seed) SEED=$2; shift 2 ;;
    *) echo "usage: $0 [--rounds N] [--seed S]" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "bench needs root (network namespaces)" >&2; exit 1; }
[ -n "$SEED" ] || SEED=$(od -An -N6 -tu8 /dev/urandom | tr -d ' ')
# The test runs the release kvnetd next to the test binary.
nice -n 10 cargo build --release --locked -q --workspace --bins
echo "kvnet $(git describe --always --dirty 2>/dev/null || echo '?'), $(date -u +%F), $(nproc) cores, kernel $(uname -r)"
echo "$ROUNDS rounds, seed $SEED (replay: bench/crash.sh --rounds $ROUNDS --seed $SEED)"
log=${CARGO_TARGET_DIR:-target}/crash-$SEED.log
set +e
KVNET_CRASH_ROUNDS=$ROUNDS KVNET_CRASH_SEED=$SEED \
  cargo test --release --locked -q -p kvnet-daemon --test crash -- --include-ignored \
  --nocapture --test-threads 1 >"$log" 2>&1
rc=$?
set -e
grep -E '^(FAILED|\||[0-9]+ rounds)' "$log" || true
echo "every round: $log"
exit $rc
