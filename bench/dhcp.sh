#!/usr/bin/env bash
# DHCPv4 under load, side by side in one run: kvnetd's DHCP server vs dnsmasq configured the
# way libvirt configures it (its conf lines, --leasefile-ro, a dhcp-script), with perfdhcp.
#   bench/dhcp.sh [--secs N] [--rates "R1 R2 ..."] [--clients N] [--no-ping-only] [--deadline S]
#                 [--range 10.77.A.B-10.77.C.D] [--generators N] [--rcvbuf BYTES] [--nice N]
#                 [--kvnetd PATH]
# For each server the rate asked (perfdhcp -r) steps up through --rates, each step on a fresh
# server (no leases), until a step loses more than 1 %; the highest step without a single
# drop is the server's zero-drop rate. "DORA/s" = ACKs received / test period (perfdhcp's
# own "Rate" also counts the -W wait at the end). First-lease latency is a gentle run (5/s, drop time 5 s).
# dnsmasq runs twice: libvirt's defaults (ping check on) and with --no-ping.
#
# Isolation: four network namespaces of our own (dhcpb-PID-*): kvnetd in one, dnsmasq in
# another, each with a bridge (10.77.0.1/16, default range 10.77.0.10-10.77.255.250) and a veth
# pair to a "client" namespace where perfdhcp runs (perfdhcp acts as a relay: giaddr is
# the client end's 10.77.0.5). The veth pairs are created inside the namespaces, so the
# machine's own network is never touched. Everything is killed and removed on exit.
# perfdhcp plays thousands of clients through one socket: replies that overflow its
# receive buffer count as drops although the server answered. Those are counted in a
# column of their own (UDP rcvbuf drops, perfdhcp ns). --rcvbuf BYTES (default 4 MiB, 0 =
# the kernel's default of 208 KiB) gives perfdhcp's sockets that buffer through an
# LD_PRELOAD shim (bench/shim/rcvbuf.c): the usual tuning is net.core.rmem_default, and
# /proc/sys is read-only here. Both servers are measured with the same generators.
# --nice N runs the generators at that niceness: on a machine where they share the cores
# with the server, the server then gets the CPU it needs first, as it would if the load
# came from other machines (the generators still get everything the server leaves).
# --generators N: N perfdhcp processes, each in a client namespace of its own with its own
# veth, giaddr (10.77.0.5, .6, ...) and client MACs, each asking RATE/N; their counts are
# summed. One perfdhcp saturates its socket and a core near 5,000 exchanges/s.
# Root only; installs kea-admin (perfdhcp) if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
export LC_ALL=C
SECS=10 CLIENTS=10000 PINGON=1 DEADLINE=1500 RANGE=10.77.0.10-10.77.255.250 GENS=1
RCVBUF=4194304 NICE=0 KVNETD=
RATES="100 250 500 750 1000 1500 2000 3000 4000 6000 8000 12000 16000"
PING_RATES="10 25 50 100"
while [ $# -gt 0 ]; do
  case "$1" in
    --secs) SECS=$2; shift 2 ;;
    --rates) RATES=$2; shift 2 ;;
    --clients) CLIENTS=$2; shift 2 ;;
    --no-ping-only) PINGON=0; shift ;;
    --deadline) DEADLINE=$2; shift 2 ;;
    --range) RANGE=$2; shift 2 ;;  # within 10.77.0.0/16, both servers
    --generators) GENS=$2; shift 2 ;;
    --rcvbuf) RCVBUF=$2; shift 2 ;;
    --nice) NICE=$2; shift 2 ;;
    --kvnetd) KVNETD=$(realpath "$2"); shift 2 ;;  # another build, e.g. an older commit's
    *) echo "usage: $0 [--secs N] [--rates \"R1 R2 ...\"] [--clients N] [--no-ping-only] [--deadline S] [--range A-B] [--generators N] [--rcvbuf BYTES] [--nice N] [--kvnetd PATH]" >&2; exit 2 ;;
  esac
done
[[ $GENS =~ ^[1-9]$ ]] || { echo "--generators must be 1..9" >&2; exit 2; }
[[ $RCVBUF =~ ^[0-9]+$ ]] || { echo "--rcvbuf must be a number of bytes" >&2; exit 2; }
[[ $NICE =~ ^[0-9]+$ && $NICE -le 19 ]] || { echo "--nice must be 0..19" >&2; exit 2; }
RS=${RANGE%-*} RE=${RANGE#*-}
[[ $RS =~ ^10\.77\.[0-9]+\.[0-9]+$ && $RE =~ ^10\.77\.[0-9]+\.[0-9]+$ ]] || { echo "--range must be within 10.77.0.0/16" >&2; exit 2; }
# addresses in the range: dnsmasq's dhcp-lease-max, as libvirt computes it
RSIZE=$(awk -v a="$RS" -v b="$RE" 'BEGIN {split(a, x, "."); split(b, y, "."); print (y[3]*256 + y[4]) - (x[3]*256 + x[4]) + 1}')
[ "$(id -u)" = 0 ] || { echo "bench needs root (network namespaces)" >&2; exit 1; }
. bench/lib.sh
ensure_perfdhcp
# The peer: dnsmasq's binary only (the dnsmasq package would also start a system service).
if ! command -v dnsmasq >/dev/null && [ ! -x /usr/sbin/dnsmasq ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends dnsmasq-base >/dev/null
fi
DNSMASQ=$(command -v dnsmasq || echo /usr/sbin/dnsmasq)
cargo build --release --locked -q --bin kvnetd --bin kvnet
BIN=$(realpath "${CARGO_TARGET_DIR:-target}")/release
KVNET=$BIN/kvnet
END=$((SECONDS + DEADLINE))
P=dhcpb-$$
# Client namespaces are KC1.., DC1..; KC and DC name the first (the latency runs use it).
KH=$P-kh KC=$P-kc1 DH=$P-dh DC=$P-dc1
CLIENT_NS=()
for g in $(seq "$GENS"); do CLIENT_NS+=("$P-kc$g" "$P-dc$g"); done
DIR=$(mktemp -d /tmp/dhcpbench.XXXXXX)
cleanup() {
  set +e
  [ -n "${MPID:-}" ] && kill "$MPID" 2>/dev/null && wait "$MPID" 2>/dev/null
  [ -n "${DPID:-}" ] && kill "$DPID" 2>/dev/null && wait "$DPID" 2>/dev/null
  # anything still running in our namespaces (perfdhcp after a timeout, dnsmasq helper)
  drop_netns "${CLIENT_NS[@]}" "$KH" "$DH"
  rm -rf "$DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
PRELOAD=()
if [ "$RCVBUF" != 0 ]; then
  gcc -O2 -shared -fPIC -o "$DIR/rcvbuf.so" bench/shim/rcvbuf.c -ldl
  PRELOAD=(env LD_PRELOAD="$DIR/rcvbuf.so" RCVBUF_BYTES="$RCVBUF")
fi
left() { echo $((END - SECONDS)); }
for ns in "$KH" "$DH" "${CLIENT_NS[@]}"; do ip netns add "$ns"; ip -n "$ns" link set lo up; done

# wait (at most 10 s) until the host end of the veth forwards on its bridge
wait_fwd() { # ns dev
  for _ in $(seq 100); do
    bridge -n "$1" link show dev "$2" 2>/dev/null | grep -q 'state forwarding' && return 0
    sleep 0.1
  done
  echo "port $2 in $1 never reached forwarding" >&2; return 1
}
# veth pairs inside the namespaces: vhG in host ns $1, vc0 (10.77.0.(4+G)/16) in client
# namespace ${2%1}G, for each generator G
veth() {
  local g
  for g in $(seq "$GENS"); do
    ip -n "$1" link add "vh$g" type veth peer name vc0 netns "${2%1}$g"
    ip -n "${2%1}$g" addr add "10.77.0.$((4 + g))/16" dev vc0
    ip -n "${2%1}$g" link set vc0 up
  done
}
# the host ends of the veth pairs on bridge $2 of host ns $1
plug() {
  local g
  for g in $(seq "$GENS"); do ip -n "$1" link set "vh$g" master "$2" up; done
}

# ---- kvnet ------------------------------------------------------------------------------
mkdir -p "$DIR/kv"
ip netns exec "$KH" "${KVNETD:-$BIN/kvnetd}" --config-dir "$DIR/kv/etc" --state-dir "$DIR/kv/lib" \
  --run-dir "$DIR/kv/run" --log warn 2>"$DIR/kvnetd.log" &
DPID=$!
export KVNET_SOCKET=$DIR/kv/run/kvnetd.sock
for _ in $(seq 200); do "$KVNET" net-list >/dev/null 2>&1 && break; sleep 0.05; done
"$KVNET" net-destroy default >/dev/null
cat >"$DIR/bench.xml" <<XML
<network><name>bench</name><forward mode='nat'/><bridge name='kvdhcp0'/>
<ip address='10.77.0.1' netmask='255.255.0.0'><dhcp><range start='$RS' end='$RE'/></dhcp></ip></network>
XML
"$KVNET" net-define "$DIR/bench.xml" >/dev/null
veth "$KH" "$KC"
kv_fresh() { # a started network with no lease, its port forwarding
  "$KVNET" net-destroy bench >/dev/null 2>&1 || true
  rm -f "$DIR/kv/lib/leases/bench.jsonl"
  "$KVNET" net-start bench >/dev/null
  plug "$KH" kvdhcp0
  for g in $(seq "$GENS"); do wait_fwd "$KH" "vh$g"; done
}

# ---- dnsmasq as libvirt runs it -------------------------------------------------------
# libvirt's bridge (stp on, delay 0 => 4 s listening+learning) only delays the first
# packet; here STP is off so that the port forwards at once.
ip -n "$DH" link add dmbr0 type bridge stp_state 0 forward_delay 0
ip -n "$DH" addr add 10.77.0.1/16 dev dmbr0
ip -n "$DH" link set dmbr0 up
veth "$DH" "$DC"
plug "$DH" dmbr0
mkdir -p "$DIR/dm" && : >"$DIR/dm/hostsfile" && : >"$DIR/dm/addnhosts" && : >"$DIR/dm/resolv.conf"
# The conf libvirt 9.0 writes for a NAT network (reference/libvirt-live/nat-default.txt),
# with this range; lease-max = range size.
cat >"$DIR/dm/bench.conf" <<CONF
strict-order
pid-file=$DIR/dm/bench.pid
except-interface=lo
bind-dynamic
interface=dmbr0
dhcp-range=$RS,$RE,255.255.0.0
dhcp-no-override
dhcp-authoritative
dhcp-lease-max=$RSIZE
dhcp-hostsfile=$DIR/dm/hostsfile
addn-hosts=$DIR/dm/addnhosts
CONF
dm_start() { # extra dnsmasq args...
  dm_stop
  # libvirt's command line, with /bin/true for libvirt_leaseshelper (forked per lease event
  # all the same) and an empty resolv.conf so that nothing is forwarded upstream. Its log
  # (one line per DHCP message, which libvirt's dnsmasq sends to syslog) goes to a file,
  # to count the NAKs.
  rm -f "$DIR/dm.log"
  ip netns exec "$DH" "$DNSMASQ" --keep-in-foreground --conf-file="$DIR/dm/bench.conf" \
    --leasefile-ro --dhcp-script=/bin/true --resolv-file="$DIR/dm/resolv.conf" --log-facility="$DIR/dm.log" "$@" \
    2>>"$DIR/dnsmasq.log" &
  MPID=$!
  for _ in $(seq 100); do
    ip netns exec "$DH" ss -lun 2>/dev/null | grep -q ':67 ' && return 0; sleep 0.05
  done
  echo "dnsmasq did not come up" >&2; cat "$DIR/dnsmasq.log" >&2; return 1
}
dm_stop() {
  if [ -n "${MPID:-}" ]; then kill "$MPID" 2>/dev/null; wait "$MPID" 2>/dev/null || true; MPID=; fi
  # the dhcp-script helper ignores SIGTERM and may outlive the main process
  for pid in $(ip netns pids "$DH" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
}

# ---- measuring ----------------------------------------------------------------------
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
# CPU seconds of the server process(es): kvnetd, or dnsmasq main + helper
server_pids() { if [ "$1" = kvnet ]; then echo "$DPID"; else ip netns pids "$DH"; fi; }
server_cpu() { local t=0 p; for p in $(server_pids "$1"); do t=$((t + $(cpu_ticks "$p"))); done; echo "$t"; }
# UDP datagrams the kernel dropped in a server namespace because the socket's receive
# buffer was full (the server was not reading): invisible to the server's own log
rcvbuf_errs() { ip netns exec "$1" awk '/^Udp:/ {n++; if (n == 1) for (i = 1; i <= NF; i++) if ($i == "RcvbufErrors") c = i; if (n == 2) print $c}' /proc/net/snmp; }
# perfdhcp in client namespace $1, arguments after; output in $OUT
perf() {
  local ns=$1; shift
  timeout -k 2 $((SECS + 30)) ip netns exec "$ns" nice -n "$NICE" "${PRELOAD[@]}" "$PERFDHCP" -4 -l vc0 "$@" >"$OUT" 2>&1 || true
}
# the generators at once, each asking rate $2/GENS from client namespace ${1%1}G with
# MACs of its own; outputs in $OUT.G
perf_all() { # first-client-ns rate args...
  local ns=$1 rate=$2 g pids=(); shift 2
  for g in $(seq "$GENS"); do
    OUT=$OUTBASE.$g perf "${ns%1}$g" -r $(((rate + GENS - 1) / GENS)) -b "mac=00:0$g:01:02:03:04" "$@" &
    pids+=($!)
  done
  wait "${pids[@]}"
}
# UDP receive-buffer drops summed over the client namespaces of ${1%1}G
client_rcvbuf_errs() {
  local t=0 g
  for g in $(seq "$GENS"); do t=$((t + $(rcvbuf_errs "${1%1}$g"))); done
  echo "$t"
}
# fields from perfdhcp reports (summed over the files given, default $OUT): rate, DO/RA
# sent, drops, min/avg/max delay (avg weighted by replies received)
parse() {
  awk '
    function fin(s) { if (n[s] > 0) { sm[s] += av[s] * n[s]; cnt[s] += n[s] } n[s] = 0 }
    FNR == 1 && NR > 1 { fin("do"); fin("ra") }
    /^Rate:/ { rate=$2 }
    /Statistics for: DISCOVER-OFFER/ { s="do" } /Statistics for: REQUEST-ACK/ { s="ra" }
    /^sent packets:/ { sent[s]+=$3 } /^received packets:/ { rcvd[s]+=$3; n[s]=$3 }
    /^drops:/ { drops[s]+=$2 }
    /^min delay:/ { if (mn[s] == "" || $3 < mn[s]) mn[s]=$3 } /^avg delay:/ { av[s]=$3 }
    /^max delay:/ { if ($3 > mx[s]) mx[s]=$3 }
    END { fin("do"); fin("ra")
      for (k in sent) ratio[k] = sent[k] ? sprintf("%g", 100 * drops[k] / sent[k]) : "-"
      printf "%.1f %s %s %s %s %s %s %s %s %s %s %s %s %s\n", rcvd["ra"]/secs,
      sent["do"]+0, drops["do"]+0, (ratio["do"]==""?"-":ratio["do"]), mn["do"]+0, (cnt["do"] ? sm["do"]/cnt["do"] : 0), mx["do"]+0,
      sent["ra"]+0, drops["ra"]+0, (ratio["ra"]==""?"-":ratio["ra"]), mn["ra"]+0, (cnt["ra"] ? sm["ra"]/cnt["ra"] : 0), mx["ra"]+0,
      (rate==""?"noreport":"ok") }' secs="$SECS" "${@:-$OUT}"
}
HZ=$(getconf CLK_TCK)
: >"$DIR/rows" ; : >"$DIR/lat"
# one perfdhcp run against a fresh server; appends a row
run_step() { # label kind(kvnet|dm) client-ns fresh-cmd rate [extra perfdhcp args]
  local label=$1 kind=$2 ns=$3 fresh=$4 rate=$5; shift 5
  $fresh
  OUTBASE=$DIR/out.$kind.$rate
  local c0 c1 sns=$DH; [ "$kind" = kvnet ] && sns=$KH
  local b0 b1 cb0 cb1; b0=$(rcvbuf_errs "$sns"); cb0=$(client_rcvbuf_errs "$ns"); c0=$(server_cpu "$kind")
  perf_all "$ns" "$rate" -R "$CLIENTS" -p "$SECS" -W 1000000 "$@"
  c1=$(server_cpu "$kind"); b1=$(rcvbuf_errs "$sns"); cb1=$(client_rcvbuf_errs "$ns")
  OUT=$OUTBASE.1
  read -r r dos dod dor domn doav domx ras rad rar ramn raav ramx ok < <(parse "$OUTBASE".*)
  local naks=-; [ "$kind" = dm ] && naks=$(grep -c DHCPNAK "$DIR/dm.log" || true)
  local cpu; cpu=$(awk -v a="$c0" -v b="$c1" -v hz="$HZ" 'BEGIN {printf "%.1f", (b-a)/hz}')
  printf '| %s | %s | %s | %s (%s %%) | %s (%s %%) | %s | %s | %s | %s / %s / %s | %s / %s / %s | %s |\n' \
    "$label" "$rate" "$r" "$dod" "$dor" "$rad" "$rar" "$naks" "$((b1 - b0))" "$((cb1 - cb0))" "$domn" "$doav" "$domx" "$ramn" "$raav" "$ramx" "$cpu" \
    | tee -a "$DIR/rows" >&2
  [ "$ok" = ok ] || { echo "perfdhcp gave no report:" >&2; tail -5 "$OUT" >&2; }
  STEP_CLEAN=0; [ "$ok" = ok ] && [ "$dod" = 0 ] && [ "$rad" = 0 ] && STEP_CLEAN=1
  STEP_RATE=$r STEP_BAD=0
  [ "$ok" = ok ] || STEP_BAD=1
  awk -v a="$dod" -v b="$rad" -v s="$dos" 'BEGIN {exit !((a + b) * 100 > s + 0)}' && STEP_BAD=1
  return 0
}
# step rates up until a step drops something
sweep() { # label kind client-ns fresh-cmd rates
  local label=$1 kind=$2 ns=$3 fresh=$4 best=none bestr=- rate
  for rate in $5; do
    if [ "$(left)" -lt $((SECS + 40)) ]; then echo "deadline: $label sweep stopped before $rate/s" >&2; break; fi
    run_step "$label" "$kind" "$ns" "$fresh" "$rate"
    if [ "$STEP_CLEAN" = 1 ]; then best=$rate bestr=$STEP_RATE; fi
    # a stray drop does not end the sweep; more than 1 % of either exchange does
    [ "$STEP_BAD" = 1 ] && break
  done
  printf '| %s | %s | %s |\n' "$label" "$best" "$bestr" >>"$DIR/best"
}
# first-lease latency: 5 new clients/s for SECS s, drop time 5 s (a ping check is 3 s)
latency() { # label kind client-ns fresh-cmd
  [ "$(left)" -ge $((SECS + 40)) ] || { echo "deadline: no latency run for $1" >&2; return 0; }
  $4
  OUT=$DIR/lat.$2.$RANDOM
  perf "$3" -r 5 -R 100000 -p "$SECS" -d 5 -W 5000000
  read -r r dos dod dor domn doav domx ras rad rar ramn raav ramx ok < <(parse)
  printf '| %s | %s | %s / %s / %s | %s / %s / %s | %s / %s |\n' "$1" "$dos" "$domn" "$doav" "$domx" \
    "$ramn" "$raav" "$ramx" "$dod" "$rad" >>"$DIR/lat"
}
dm_ping() { dm_start; }
dm_noping() { dm_start --no-ping; }
: >"$DIR/best"

latency "kvnet" kvnet "$KC" kv_fresh
latency "dnsmasq, libvirt defaults (ping check)" dm "$DC" dm_ping
latency "dnsmasq --no-ping" dm "$DC" dm_noping
sweep "kvnet" kvnet "$KC" kv_fresh "$RATES"
sweep "dnsmasq --no-ping" dm "$DC" dm_noping "$RATES"
[ "$PINGON" = 1 ] && sweep "dnsmasq, libvirt defaults (ping check)" dm "$DC" dm_ping "$PING_RATES"
dm_stop
rss=$(awk '/VmRSS/ {print $2}' "/proc/$DPID/status" 2>/dev/null || echo "?")

echo "perfdhcp receive buffers: $([ "$RCVBUF" = 0 ] && echo "kernel default" || echo "$RCVBUF bytes (bench/shim/rcvbuf.c)"); perfdhcp niceness: $NICE"
echo "kvnet ${KVNETD:-$(git describe --always --dirty 2>/dev/null || echo '?')} vs $("$DNSMASQ" --version | head -1 | awk '{print $1, $3}'), $("$PERFDHCP" -v 2>&1 | head -1 | tr -d '\n'), $(date -u +%F), $(nproc) cores, kernel $(uname -r)"
if [ "$GENS" = 1 ]; then
  echo "perfdhcp -4 -l vc0 -r RATE -R $CLIENTS -p $SECS -W 1000000 (relay mode, giaddr 10.77.0.5), fresh server per step, range $RS-$RE ($RSIZE addresses)"
else
  echo "$GENS perfdhcp at once, each -4 -l vc0 -r RATE/$GENS -R $CLIENTS -p $SECS -W 1000000 -b mac=00:0G:01:02:03:04 (relay mode, giaddr 10.77.0.(4+G)) from its own namespace; counts summed; fresh server per step, range $RS-$RE ($RSIZE addresses)"
fi
echo
echo "Highest rate asked with 0 drops (DISCOVER-OFFER and REQUEST-ACK):"
echo
echo "| server | rate asked, 0 drops | DORA completed per s |"
echo "| --- | --- | --- |"
cat "$DIR/best"
echo
echo "Every step (delays in ms, min / avg / max; CPU = server process(es) during the step):"
echo
echo "| server | rate asked | DORA/s | DO drops | RA drops | NAKs (dnsmasq log) | UDP rcvbuf drops (server ns) | UDP rcvbuf drops (perfdhcp ns) | DISCOVER→OFFER | REQUEST→ACK | server CPU s |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
cat "$DIR/rows"
echo
echo "First-lease latency, new clients at 5/s for ${SECS} s (perfdhcp -r 5 -p $SECS -d 5), ms:"
echo
echo "| server | exchanges | DISCOVER→OFFER min / avg / max | REQUEST→ACK min / avg / max | drops DO / RA |"
echo "| --- | --- | --- | --- | --- |"
cat "$DIR/lat"
echo
echo "kvnetd RSS at the end: ${rss} kB; kvnetd log (warn and up): $(wc -l <"$DIR/kvnetd.log") lines"
if [ -s "$DIR/kvnetd.log" ]; then
  echo '```'
  # one line per kind of message, with its count
  sed -E 's/^[^ ]+ +//; s/[0-9a-f]{2}(:[0-9a-f]{2}){5}/MAC/g; s/10\.77\.[0-9]+\.[0-9]+/10.77.x.y/g' "$DIR/kvnetd.log" \
    | sort | uniq -c | sort -rn | head -15
  echo '```'
fi
