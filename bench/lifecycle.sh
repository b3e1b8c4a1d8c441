#!/usr/bin/env bash
# Times `kvnet net-start` / `net-destroy` of a NAT network with DHCP (CLI round trip
# included), and the start of the 1st vs the 200th network, with kvnetd running in a
# network namespace of its own. With --with-libvirt, the same is measured for libvirt in
# the same run (see peers/libvirt.sh). Root only; nothing touches the machine's network.
#   bench/lifecycle.sh [--reps N] [--nets N] [--with-libvirt]
set -euo pipefail
cd "$(dirname "$0")/.."
REPS=30 NETS=200 LIBVIRT=0
while [ $# -gt 0 ]; do
  case "$1" in
    --reps) REPS=$2; shift 2 ;;
    --nets) NETS=$2; shift 2 ;;
    --with-libvirt) LIBVIRT=1; shift ;;
    *) echo "usage: $0 [--reps N] [--nets N] [--with-libvirt]" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "bench needs root (network namespaces)" >&2; exit 1; }
cargo build --release --locked -q --bin kvnetd --bin kvnet
T=$(realpath -m "${CARGO_TARGET_DIR:-target}")
KVNET=$T/release/kvnet
NS=kvbench-$$
DIR=$(mktemp -d /tmp/kvbench.XXXXXX)
# The run dir on tmpfs, as /run is on a real host (here /run is on the root disk).
RUN=$(mktemp -d /dev/shm/kvbench.XXXXXX)
cleanup() {
  [ -n "${DPID:-}" ] && kill "$DPID" 2>/dev/null && wait "$DPID" 2>/dev/null
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "$DIR" "$RUN"
}
trap cleanup EXIT
ip netns add "$NS"
ip netns exec "$NS" ip link set lo up
ip netns exec "$NS" "$T"/release/kvnetd --config-dir "$DIR/etc" --state-dir "$DIR/lib" \
  --run-dir "$RUN" --log warn 2>"$DIR/kvnetd.log" &
DPID=$!
export KVNET_SOCKET=$RUN/kvnetd.sock
for _ in $(seq 200); do "$KVNET" net-list >/dev/null 2>&1 && break; sleep 0.05; done
"$KVNET" net-destroy default >/dev/null

. bench/lib.sh

net_xml bench0 kvbench0 0 250 >"$DIR/bench0.xml"
"$KVNET" net-define "$DIR/bench0.xml" >/dev/null
# net-destroy returns once traffic has stopped; the kernel's deletion of the bridge
# and rules (RCU grace periods) finishes in the background. Starts are timed on a
# quiet host (after QUIET seconds), like libvirt's whose destroy waits for everything;
# the destroy --wait and the back-to-back cycle show what the background part costs.
QUIET=0.3
: >"$DIR/start" ; : >"$DIR/destroy" ; : >"$DIR/destroy_wait" ; : >"$DIR/cycle"
for _ in $(seq "$REPS"); do
  sleep $QUIET
  us "$KVNET" net-start bench0 >>"$DIR/start"
  us "$KVNET" net-destroy bench0 >>"$DIR/destroy"
  sleep $QUIET
  "$KVNET" net-start bench0 >/dev/null 2>&1
  us "$KVNET" net-destroy --wait bench0 >>"$DIR/destroy_wait"
  "$KVNET" net-start bench0 >/dev/null 2>&1
  t0=$EPOCHREALTIME; "$KVNET" net-destroy bench0 >/dev/null; "$KVNET" net-start bench0 >/dev/null 2>&1; t1=$EPOCHREALTIME
  echo $(( ${t1/./} - ${t0/./} )) >>"$DIR/cycle"
  "$KVNET" net-destroy --wait bench0 >/dev/null
done
: >"$DIR/floor"
for _ in $(seq "$REPS"); do us "$KVNET" net-list >>"$DIR/floor"; done

# 1st vs NETS-th: the same network started with none, then with NETS-1 others running.
for i in $(seq 1 "$NETS"); do
  net_xml "n$i" "kvn$i" $((i % 250)) $((i / 250 + 1)) >"$DIR/n$i.xml"
  "$KVNET" net-define "$DIR/n$i.xml" >/dev/null
done
: >"$DIR/first"
for _ in $(seq "$REPS"); do
  sleep $QUIET; us "$KVNET" net-start "n$NETS" >>"$DIR/first"; "$KVNET" net-destroy "n$NETS" >/dev/null
done
for i in $(seq 1 $((NETS - 1))); do "$KVNET" net-start "n$i" >/dev/null 2>&1; done
: >"$DIR/last"
for _ in $(seq "$REPS"); do
  sleep $QUIET; us "$KVNET" net-start "n$NETS" >>"$DIR/last"; "$KVNET" net-destroy "n$NETS" >/dev/null
done
rss=$(awk '/VmRSS/ {print $2}' /proc/"$(pgrep -n -f "kvnetd --config-dir $DIR")"/status 2>/dev/null || echo "?")

echo "kvnet $(git describe --always --dirty 2>/dev/null || echo '?'), $(date -u +%F), $(nproc) cores, kernel $(uname -r), REPS=$REPS"
echo
echo "| operation (CLI round trip, wall time) | median | min – max | n |"
echo "| --- | --- | --- | --- |"
report "kvnet net-list (client + connect floor)" "$DIR/floor"
report "kvnet net-start (NAT + DHCP)" "$DIR/start"
report "kvnet net-destroy" "$DIR/destroy"
report "kvnet net-destroy --wait (bridge and rules deleted)" "$DIR/destroy_wait"
report "kvnet net-destroy + net-start at once, same network" "$DIR/cycle"
report "kvnet net-start, 1st network (none running)" "$DIR/first"
report "kvnet net-start, ${NETS}th network ($((NETS - 1)) running)" "$DIR/last"
f=$(median <"$DIR/first"); l=$(median <"$DIR/last")
awk -v f="$f" -v l="$l" -v n="$NETS" 'BEGIN {printf "\n%dth / 1st start: %.2fx\n", n, l/f}'
echo "kvnetd RSS with $((NETS - 1)) networks active: ${rss} kB"
if [ "$LIBVIRT" = 1 ]; then
  echo
  bench/peers/libvirt.sh --reps "$REPS"
fi
