#!/usr/bin/env bash
# kvnetd with many networks (NAT, DHCP and DNS served on each): the Nth start against the
# 1st, net-list with N networks, kvnetd's memory, and a kill -9 + restart that must adopt
# all N networks while a guest pings through NAT the whole time (no packet may be lost).
# Everything runs in network namespaces of its own; nothing touches the machine's network.
#   bench/scale.sh [--nets N] [--reps R] [--log FILTER] [--perf DIR]
# --perf DIR records kvnetd (perf, cpu-clock, call graphs) during the 1st and the Nth
# starts: DIR/first.data and DIR/last.data. KEEP_LOG=FILE keeps kvnetd's log.
set -euo pipefail
cd "$(dirname "$0")/.."
NETS=1000 REPS=15 LOG=warn PERF=
while [ $# -gt 0 ]; do
  case "$1" in
    --nets) NETS=$2; shift 2 ;;
    --reps) REPS=$2; shift 2 ;;
    --log) LOG=$2; shift 2 ;;
    --perf) PERF=$(realpath -m "$2"); mkdir -p "$PERF"; shift 2 ;;
    *) echo "usage: $0 [--nets N] [--reps R] [--log FILTER] [--perf DIR]" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "bench needs root (network namespaces)" >&2; exit 1; }
cargo build --release --locked -q --bin kvnetd --bin kvnet
T=$(realpath -m "${CARGO_TARGET_DIR:-target}")
KVNET=$T/release/kvnet
P=ks$$
NS=$P-h GUEST=$P-g OUT=$P-o
DIR=$(mktemp -d /tmp/kvscale.XXXXXX)
RUN=$(mktemp -d /dev/shm/kvscale.XXXXXX)
cleanup() {
  set +e
  [ -n "${PPID_PING:-}" ] && kill "$PPID_PING" 2>/dev/null
  pkill -9 -f "kvnetd --config-dir $DIR" 2>/dev/null
  for n in "$NS" "$GUEST" "$OUT"; do ip netns del "$n" 2>/dev/null; done
  [ -n "${KEEP_LOG:-}" ] && cp "$DIR/kvnetd.log" "$KEEP_LOG"
  rm -rf "$DIR" "$RUN"
}
trap cleanup EXIT
for n in "$NS" "$GUEST" "$OUT"; do ip netns add "$n"; ip netns exec "$n" ip link set lo up; done
daemon() {
  ip netns exec "$NS" "$T"/release/kvnetd --config-dir "$DIR/etc" --state-dir "$DIR/lib" \
    --run-dir "$RUN" --log "$LOG" 2>>"$DIR/kvnetd.log" &
  DPID=$!
}
export KVNET_SOCKET=$RUN/kvnetd.sock
up() { for _ in $(seq 2000); do "$KVNET" net-list >/dev/null 2>&1 && return; sleep 0.005; done; echo "kvnetd did not come up" >&2; cat "$DIR/kvnetd.log" >&2; exit 1; }
daemon; up
"$KVNET" net-destroy default >/dev/null

. bench/lib.sh
# n1 .. nN, 10.B.A.0/24 (second octet from 1, as bench/lifecycle.sh)
for i in $(seq 1 "$NETS"); do
  net_xml "n$i" "kvs$i" $((i % 250)) $((i / 250 + 1)) >"$DIR/n$i.xml"
  "$KVNET" net-define "$DIR/n$i.xml" >/dev/null
done
QUIET=0.3
# The start of network N, REPS times, timed into file $1 (and profiled into $PERF/$1.data).
starts() {
  local perf=
  if [ -n "$PERF" ]; then
    perf record -q -e cpu-clock -g -p "$DPID" -o "$PERF/$1.data" 2>/dev/null & perf=$!
    sleep 0.5
  fi
  : >"$DIR/$1"
  for _ in $(seq "$REPS"); do
    sleep $QUIET; us "$KVNET" net-start "n$NETS" >>"$DIR/$1"; "$KVNET" net-destroy "n$NETS" >/dev/null
  done
  if [ -n "$perf" ]; then kill -INT "$perf"; wait "$perf" || true; fi
}
starts first
t0=$EPOCHREALTIME
for i in $(seq 1 $((NETS - 1))); do "$KVNET" net-start "n$i" >/dev/null; done
t1=$EPOCHREALTIME
starts last
"$KVNET" net-start "n$NETS" >/dev/null
: >"$DIR/list"
for _ in $(seq "$REPS"); do us "$KVNET" net-list --all >>"$DIR/list"; done
rss=$(awk '/VmRSS/ {print $2}' /proc/"$DPID"/status)
fds=$(ls /proc/"$DPID"/fd | wc -l)
# kvnetd's own CPU time over 5 idle seconds (utime + stime, in clock ticks).
cpu() { awk '{print $14 + $15}' /proc/"$DPID"/stat; }
c0=$(cpu); sleep 5; c1=$(cpu)
idle=$(awk -v a="$c0" -v b="$c1" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.1f", (b-a)/hz/5*100}')

# A guest on n1 (10.1.1.0/24) pinging an "outside" host through n1's NAT.
ip link add "$P-gv" type veth peer name eth0 netns "$GUEST"
ip link set "$P-gv" netns "$NS"
ip netns exec "$NS" ip link set "$P-gv" master kvs1 up
ip netns exec "$GUEST" ip addr add 10.1.1.50/24 dev eth0
ip netns exec "$GUEST" ip link set eth0 up
ip netns exec "$GUEST" ip route add default via 10.1.1.1
ip link add "$P-up" type veth peer name eth0 netns "$OUT"
ip link set "$P-up" netns "$NS"
ip netns exec "$NS" ip addr add 198.51.100.1/24 dev "$P-up"
ip netns exec "$NS" ip link set "$P-up" up
ip netns exec "$OUT" ip addr add 198.51.100.2/24 dev eth0
ip netns exec "$OUT" ip link set eth0 up
ip netns exec "$NS" ip route add default via 198.51.100.2
for _ in $(seq 100); do ip netns exec "$GUEST" ping -c1 -W1 198.51.100.2 >/dev/null 2>&1 && break; sleep 0.1; done
# 5 ms apart for about 10 s, across the kill and the restart.
ip netns exec "$GUEST" ping -i 0.005 -c 2000 -W 1 198.51.100.2 >"$DIR/ping" 2>&1 &
PPID_PING=$!
sleep 2
kill -9 "$DPID"; wait "$DPID" 2>/dev/null || true
r0=$EPOCHREALTIME
daemon; up
r1=$EPOCHREALTIME
wait "$PPID_PING" || true
PPID_PING=
active=$("$KVNET" net-list | grep -c ' active ' || true)

echo "kvnet $(git describe --always --dirty 2>/dev/null || echo '?'), $(date -u +%F), $(nproc) cores, kernel $(uname -r), NETS=$NETS, REPS=$REPS"
echo
echo "| measure | median | min – max | n |"
echo "| --- | --- | --- | --- |"
report "net-start, 1st network (none running)" "$DIR/first"
report "net-start, ${NETS}th network ($((NETS - 1)) running)" "$DIR/last"
report "net-list --all with $NETS networks" "$DIR/list"
f=$(median <"$DIR/first"); l=$(median <"$DIR/last")
awk -v f="$f" -v l="$l" -v n="$NETS" 'BEGIN {printf "\n%dth / 1st start: %.2fx\n", n, l/f}'
awk -v a="${t0/./}" -v b="${t1/./}" -v n="$((NETS - 1))" 'BEGIN {printf "starting %d networks one after the other: %.1f s\n", n, (b-a)/1e6}'
echo "kvnetd with $NETS networks active: RSS ${rss} kB, ${fds} descriptors, ${idle} % of a core when idle"
awk -v a="${r0/./}" -v b="${r1/./}" 'BEGIN {printf "kill -9, then a new kvnetd answering with every network adopted: %.2f s\n", (b-a)/1e6}'
echo "networks active after the restart: $active of $NETS"
echo "ping through NAT across the kill and restart: $(grep -E 'packets transmitted' "$DIR/ping")"
# Anything but replies (errors, losses) is shown, to say what went wrong.
if grep -qE ' [1-9][0-9]*(\.[0-9]+)?% packet loss|errors' "$DIR/ping"; then
  grep -vE 'bytes from|^$' "$DIR/ping" | head -20
fi
