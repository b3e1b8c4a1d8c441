#!/usr/bin/env bash
# The lease journal under a guest that renews (and releases and rebinds) from many MACs at
# the highest rate it can, with kvnetd's config and state dirs on a small filesystem.
#   bench/journal.sh [--secs N] [--macs N] [--size SIZE] [--rate R] [--renew R] [--release R]
#                    [--every S] [--kvnetd PATH] [--nice N]
# Defaults: 600 s, 500 MACs, a 50m tmpfs, perfdhcp -r 500 -f 400 -F 100 (DORA, renew and
# release rates it asks for; the per-client limit lets 2 packets a second per MAC through).
# Every --every seconds (10) it prints: the journal's size and lines, the filesystem's use,
# kvnetd's fdatasync and fsync calls per second (perf stat on the syscall tracepoints),
# its CPU and RSS. --kvnetd runs another build (e.g. an older commit's) for comparison.
#
# Isolation: kvnetd in a network namespace of its own (jrnl-PID-h), perfdhcp in another
# (jrnl-PID-c) behind a veth on the network's bridge, relaying (giaddr 10.77.0.5). The
# filesystem is a tmpfs mounted in a private mount namespace held by a process of this
# script (setpriv --pdeathsig), so the machine never sees it; kvnetd joins that namespace.
# Everything is killed and removed on exit. Root only; installs kea-admin (perfdhcp) if
# missing.
set -euo pipefail
cd "$(dirname "$0")/.."
export LC_ALL=C
SECS=600 MACS=500 SIZE=50m RATE=500 RENEW=400 RELEASE=100 EVERY=10 KVNETD= NICE=0
usage() {
  echo "usage: $0 [--secs N] [--macs N] [--size SIZE] [--rate R] [--renew R] [--release R] [--every S] [--kvnetd PATH] [--nice N]" >&2
  exit 2
}
while [ $# -gt 0 ]; do
  case "$1" in
    --secs) SECS=$2; shift 2 ;;
    --macs) MACS=$2; shift 2 ;;
    --size) SIZE=$2; shift 2 ;;
    --rate) RATE=$2; shift 2 ;;
    --renew) RENEW=$2; shift 2 ;;
    --release) RELEASE=$2; shift 2 ;;
    --every) EVERY=$2; shift 2 ;;
    --kvnetd) KVNETD=$(realpath "$2"); shift 2 ;;
    --nice) NICE=$2; shift 2 ;;
    *) usage ;;
  esac
done
for v in "$SECS" "$MACS" "$RATE" "$RENEW" "$RELEASE" "$EVERY" "$NICE"; do
  [[ $v =~ ^[0-9]+$ ]] || usage
done
[[ $SIZE =~ ^[0-9]+[kmg]$ ]] || { echo "--size is like 50m" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "bench needs root (namespaces, mounts)" >&2; exit 1; }
. bench/lib.sh
ensure_perfdhcp
command -v perf >/dev/null || { echo "needs perf (linux-perf) for the fsync counts" >&2; exit 1; }
cargo build --release --locked -q --bin kvnetd --bin kvnet
BIN=$(realpath "${CARGO_TARGET_DIR:-target}")/release
KVNETD=${KVNETD:-$BIN/kvnetd}
H=jrnl-$$-h C=jrnl-$$-c
DIR=$(mktemp -d /tmp/kvjournal.XXXXXX)
HPID= DPID= PPID_= SPID=
cleanup() {
  set +e
  trap - EXIT INT TERM
  for p in "$SPID" "$PPID_" "$DPID" "$HPID"; do
    [ -n "$p" ] && kill "$p" 2>/dev/null && wait "$p" 2>/dev/null
  done
  drop_netns "$C" "$H"
  rm -rf "$DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
ip netns add "$H"
ip netns add "$C"
ip -n "$H" link set lo up
ip -n "$C" link set lo up

# The small filesystem, in a mount namespace made inside kvnetd's network namespace (so
# that its /sys is that namespace's), held by a sleep that dies with this script.
mkdir -p "$DIR/fs" "$DIR/run"
ip netns exec "$H" setpriv --pdeathsig KILL unshare --mount --propagation private \
  sh -c "mount -t tmpfs -o size=$SIZE,mode=0755 kvnet-bench '$DIR/fs' && echo ready && exec sleep infinity" \
  >"$DIR/holder.out" 2>&1 &
HPID=$!
for _ in $(seq 100); do grep -q ready "$DIR/holder.out" 2>/dev/null && break; sleep 0.05; done
grep -q ready "$DIR/holder.out" || { cat "$DIR/holder.out" >&2; exit 1; }
FS=/proc/$HPID/root$DIR/fs

nsenter --mount="/proc/$HPID/ns/mnt" --net="/proc/$HPID/ns/net" "$KVNETD" \
  --config-dir "$DIR/fs/etc" --state-dir "$DIR/fs/lib" --run-dir "$DIR/run" --log warn \
  2>"$DIR/kvnetd.log" &
DPID=$!
export KVNET_SOCKET=$DIR/run/kvnetd.sock
for _ in $(seq 200); do "$BIN/kvnet" net-list >/dev/null 2>&1 && break; sleep 0.05; done
"$BIN/kvnet" net-destroy default >/dev/null
# A /22: the MACs all get an address, and the budget of lease changes is the default's
# floor (16 a second once the burst of one pool is spent).
cat >"$DIR/churn.xml" <<XML
<network><name>churn</name><bridge name='kvjrnl0'/>
<ip address='10.77.0.1' prefix='22'><dhcp><range start='10.77.0.10' end='10.77.3.250'/></dhcp></ip></network>
XML
"$BIN/kvnet" net-define "$DIR/churn.xml" >/dev/null
"$BIN/kvnet" net-start churn >/dev/null
ip -n "$H" link add vh0 type veth peer name vc0 netns "$C"
ip -n "$C" addr add 10.77.0.5/22 dev vc0
ip -n "$C" link set vc0 up
ip -n "$H" link set vh0 master kvjrnl0 up
for _ in $(seq 100); do
  bridge -n "$H" link show dev vh0 | grep -q 'state forwarding' && break; sleep 0.1
done
JOURNAL=$FS/lib/leases/churn.jsonl

HZ=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$DPID/stat"; }
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$DPID/status"; }
perf stat -x, -I $((EVERY * 1000)) -e syscalls:sys_enter_fdatasync,syscalls:sys_enter_fsync \
  -p "$DPID" -o "$DIR/perf.csv" &
SPID=$!
# perfdhcp refuses a rate of 0: leave the option out instead.
RATES=(-r "$RATE")
[ "$RENEW" -gt 0 ] && RATES+=(-f "$RENEW")
[ "$RELEASE" -gt 0 ] && RATES+=(-F "$RELEASE")
timeout -k 5 $((SECS + 30)) ip netns exec "$C" nice -n "$NICE" "$PERFDHCP" -4 -l vc0 \
  "${RATES[@]}" -R "$MACS" -p "$SECS" -W 2000000 \
  -b mac=02:00:00:00:00:00 >"$DIR/perfdhcp.out" 2>&1 &
PPID_=$!
echo "| t (s) | journal bytes | journal lines | filesystem used | kvnetd CPU | kvnetd RSS |"
echo "| --- | --- | --- | --- | --- | --- |"
c0=$(cpu_ticks) t0=$SECONDS max=0
for ((t = EVERY; t <= SECS; t += EVERY)); do
  sleep $((t0 + t - SECONDS))
  bytes=$(stat -c %s "$JOURNAL" 2>/dev/null || echo 0)
  lines=$(wc -l <"$JOURNAL" 2>/dev/null || echo 0)
  used=$(stat -f -c '%b %f %S' "$FS" | awk '{printf "%.2f MB", ($1 - $2) * $3 / 1e6}')
  c1=$(cpu_ticks)
  cpu=$(awk -v a="$c0" -v b="$c1" -v hz="$HZ" -v s="$EVERY" 'BEGIN {printf "%.1f %%", 100 * (b - a) / hz / s}')
  c0=$c1
  [ "$bytes" -gt "$max" ] && max=$bytes
  echo "| $t | $bytes | $lines | $used | $cpu | $(rss_kb) kB |"
done
wait "$PPID_" || true
PPID_=
kill -INT "$SPID" 2>/dev/null; wait "$SPID" 2>/dev/null || true
SPID=
echo
echo "fdatasync and fsync calls of kvnetd per second, per ${EVERY} s interval (perf stat):"
echo
awk -F, -v s="$EVERY" '
  $4 ~ /fdatasync/ {d[++n] = $2} $4 ~ /sys_enter_fsync/ {f[++m] = $2}
  END {
    for (i = 1; i <= n; i++) { line = line sprintf("%s%.1f/%.1f", i > 1 ? " " : "", d[i] / s, f[i] / s); td += d[i]; tf += f[i] }
    print line; printf "\ntotal: %d fdatasync, %d fsync (%.1f and %.2f a second)\n", td, tf, td / (n * s), tf / (n * s)
  }' "$DIR/perf.csv"
echo
echo "largest journal seen: $max bytes; at the end: $(stat -c %s "$JOURNAL") bytes, $(wc -l <"$JOURNAL") lines"
echo "perfdhcp -4 -l vc0 ${RATES[*]} -R $MACS -p $SECS (relay, giaddr 10.77.0.5):"
awk '/Statistics for:/ {sub(/.*Statistics for: */, ""); gsub(/[* ]/, ""); k = $0} /^(sent|received) packets:/ {v[$1] = $3}
  /^drops:/ {printf "  %s: %s sent, %s answered, %s dropped\n", k, v["sent"], v["received"], $2}' "$DIR/perfdhcp.out"
grep -q "Statistics for:" "$DIR/perfdhcp.out" || { echo "perfdhcp gave no report:" >&2; tail -5 "$DIR/perfdhcp.out" >&2; }
echo "kvnetd: $KVNETD ($("$KVNETD" --version 2>/dev/null)); tree $(git describe --always --dirty); $(date -u +%F), $(nproc) cores, kernel $(uname -r)"
echo "kvnetd log (warn and up): $(wc -l <"$DIR/kvnetd.log") lines"
if [ -s "$DIR/kvnetd.log" ]; then
  sed -E 's/^[^ ]+ +//; s/([0-9a-f]{2}:){5}[0-9a-f]{2}/MAC/g; s/[0-9]+/N/g' "$DIR/kvnetd.log" | sort | uniq -c | sort -rn | head -10
fi
