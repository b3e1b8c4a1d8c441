#!/usr/bin/env bash
# Quality of service: shaped throughput against its target, REPS times.
#   bench/qos.sh [--reps N]
# Runs the QoS root tests (crates/daemon/tests/qos.rs) and collects what they measure:
# a port-create'd TAP with --inbound 1000 --outbound 500 (kB/s) whose guest, in a
# namespace, is wired to the TAP by a frame relay; iperf3 (one TCP stream, 4 s, the first
# second omitted) host -> guest (inbound: HTB on the TAP) and guest -> host (outbound:
# the TAP's ingress redirected to an IFB with HTB); then two guests with floors of 1500
# and 400 kB/s under a network inbound average of 2000 kB/s, both receiving at once.
# Figures are TCP goodput in kB/s (1000 bytes); the shaper counts whole Ethernet frames.
# Root only; only the namespaces the tests create are touched.
set -euo pipefail
cd "$(dirname "$0")/.."
REPS=5
while [ $# -gt 0 ]; do
  case "$1" in
    --reps) REPS=$2; shift 2 ;;
    *) echo "usage: $0 [--reps N]" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "bench needs root (network namespaces)" >&2; exit 1; }
command -v iperf3 >/dev/null ||
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends iperf3 >/dev/null
cargo build --workspace -q
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for _ in $(seq "$REPS"); do
  cargo test -q -p kvnet-daemon --test qos -- --include-ignored --test-threads=1 --nocapture \
    a_shaped ports_with_floors 2>&1 | grep -oE '(inbound|outbound|floors): .*' >>"$out"
done
median() { sort -n | awk '{v[NR]=$1} END {m=(NR%2)?v[(NR+1)/2]:(v[NR/2]+v[NR/2+1])/2; printf "%.0f (%.0f - %.0f, n=%d)", m, v[1], v[NR], NR}'; }
echo "inbound, target 1000 kB/s:  $(awk '/^inbound:/ {print $2}' "$out" | median)"
echo "outbound, target 500 kB/s:  $(awk '/^outbound:/ {print $2}' "$out" | median)"
echo "floor 1500 under contention: $(awk '/^floors:/ {print $3}' "$out" | median)"
echo "floor 400 under contention:  $(awk '/^floors:/ {print $8}' "$out" | median)"
