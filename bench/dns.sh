#!/usr/bin/env bash
# DNS throughput on local names, kvnet vs dnsmasq configured the way libvirt configures it,
# in one run, side by side (rounds interleaved: kvnet, dnsmasq, kvnet, dnsmasq, ...).
#   bench/dns.sh [--secs N] [--rounds N] [--clients N] [--outstanding N] [--hosts N] [--forward]
# Each side: a "host" network namespace with the server and a bridge kvdns0 10.78.0.1/24,
# a "client" namespace (10.78.0.200/24) joined to the bridge by a veth, and
#   dnsperf -s 10.78.0.1 -d NAMES -l SECS -c CLIENTS -q OUTSTANDING
# (no rate limit: as many queries as the server answers, OUTSTANDING in flight at most).
# NAMES holds HOSTS names hX.bench.test (type A), read round robin; they are `<dns><host>`
# entries for kvnet and the same lines in addn-hosts for dnsmasq. Server CPU is
# utime+stime from /proc over the dnsperf run; "machine busy" and "rest µs/query" come from
# /proc/stat (all CPUs; rest = machine CPU per query minus the server's, so run it on an
# otherwise idle machine); server UDP drops are the host namespace's
# Udp RcvbufErrors / SndbufErrors (/proc/net/snmp) over the run.
# dnsmasq's conf is libvirt's for a NAT network with `<domain name localOnly='yes'>`
# (see nat-static.txt in the peer reference), with an empty resolv-file instead of the
# namespace's /etc/resolv.conf (so neither server has an upstream) and in the foreground.
# --forward: the names are not local (fX.up.test) and both servers forward every query to
# an upstream in their host namespace (a third dnsmasq on 127.0.0.2, answering from
# addn-hosts with TTL 0, so libvirt's dnsmasq cannot answer from its cache): the cost of
# forwarding, kvnet's fresh random-port socket per query against dnsmasq's port pool.
# Root only; the machine's own network namespace is not touched. Everything (processes,
# namespaces, scratch dir) is removed on exit, also on failure or signal.
set -euo pipefail
cd "$(dirname "$0")/.."
export LC_ALL=C
SECS=10 ROUNDS=3 CLIENTS=4 OUTST=100 HOSTS=100 FORWARD=
while [ $# -gt 0 ]; do
  case "$1" in
    --secs) SECS=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --clients) CLIENTS=$2; shift 2 ;;
    --outstanding) OUTST=$2; shift 2 ;;
    --hosts) HOSTS=$2; shift 2 ;;
    --forward) FORWARD=1; shift ;;
    *) echo "usage: $0 [--secs N] [--rounds N] [--clients N] [--outstanding N] [--hosts N] [--forward]" >&2; exit 2 ;;
  esac
done
die() { echo "dns.sh: $*" >&2; exit 1; }
case "$SECS$ROUNDS$CLIENTS$OUTST$HOSTS" in *[!0-9]*) die "options take positive integers" ;; esac
[ "$HOSTS" -ge 1 ] && [ "$HOSTS" -le 180 ] || die "--hosts must be 1..180 (10.78.0.10 upwards)"
[ "$(id -u)" = 0 ] || die "needs root (network namespaces)"
command -v dnsmasq >/dev/null || die "dnsmasq missing"
if ! command -v dnsperf >/dev/null; then
  echo "dns.sh: installing dnsperf" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q dnsperf >/dev/null 2>&1 ||
    die "apt-get install dnsperf failed"
fi
cargo build --release -q --bin kvnetd --bin kvnet
T=$(realpath -m "${CARGO_TARGET_DIR:-target}")
KVNET=$T/release/kvnet

KNS=kvdnsk-$$ KCL=kvdnskc-$$ MNS=kvdnsm-$$ MCL=kvdnsmc-$$
DIR=$(mktemp -d /tmp/kvdns.XXXXXX)
chmod 755 "$DIR"  # dnsmasq drops to nobody
KPID= MPID= UPIDS=
stop() { # pid: TERM, up to 3 s, then KILL
  [ -n "$1" ] || return 0
  kill "$1" 2>/dev/null || return 0
  for _ in $(seq 30); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop "$KPID"; stop "$MPID"
  for p in $UPIDS; do stop "$p"; done
  for ns in "$KCL" "$MCL" "$KNS" "$MNS"; do
    # anything still running in our namespaces (started by this script) goes too
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
  done
  if [ "$rc" != 0 ] && [ -s "$DIR/kvnetd.log" ]; then
    echo "dns.sh: failed (rc $rc); kvnetd log tail:" >&2; tail -20 "$DIR/kvnetd.log" >&2
  fi
  rm -rf "$DIR"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- names --------------------------------------------------------------------------------
: >"$DIR/names" ; : >"$DIR/addnhosts" ; DNSXML=
for i in $(seq 10 $((HOSTS + 9))); do
  echo "h$i.bench.test A" >>"$DIR/names"
  printf '10.78.0.%d\th%d\n' "$i" "$i" >>"$DIR/addnhosts"
  DNSXML+="<host ip='10.78.0.$i'><hostname>h$i</hostname></host>"
done
: >"$DIR/resolv.conf"
if [ -n "$FORWARD" ]; then
  : >"$DIR/names" ; : >"$DIR/uphosts"
  for i in $(seq 10 $((HOSTS + 9))); do
    echo "f$i.up.test A" >>"$DIR/names"
    printf '10.79.0.%d\tf%d.up.test\n' "$i" "$i" >>"$DIR/uphosts"
  done
  echo "nameserver 127.0.0.2" >"$DIR/resolv.conf"
fi
upstream() { # host-ns: the upstream both servers forward to
  ip netns exec "$1" dnsmasq --keep-in-foreground --no-resolv --no-hosts --no-dhcp-interface=lo \
    --addn-hosts="$DIR/uphosts" --listen-address=127.0.0.2 --bind-interfaces --port 53 \
    --local-ttl=0 --pid-file="$DIR/up-$1.pid" 2>>"$DIR/upstream.log" &
  UPIDS+=" $!"
}

# ---- namespaces: host + client, veth eth0 (client) <-> vcl0 (host, later on the bridge) ----
mkns() { # host-ns client-ns
  ip netns add "$1"; ip netns add "$2"
  ip -n "$1" link set lo up; ip -n "$2" link set lo up
  ip -n "$2" link add eth0 type veth peer name vcl0 netns "$1"
  ip -n "$2" addr add 10.78.0.200/24 dev eth0
  ip -n "$2" link set eth0 up
}
join_bridge() { # host-ns client-ns: enslave vcl0 to kvdns0, wait until a name resolves
  ip -n "$1" link set vcl0 master kvdns0
  ip -n "$1" link set vcl0 up
  for _ in $(seq 150); do  # STP may hold the port a few seconds; 15 s at most
    ip netns exec "$2" dig +time=1 +tries=1 +short @10.78.0.1 h10.bench.test A 2>/dev/null |
      grep -qx 10.78.0.10 && return 0
    sleep 0.1
  done
  die "no answer for h10.bench.test from 10.78.0.1 in $1"
}
mkns "$KNS" "$KCL"
mkns "$MNS" "$MCL"
if [ -n "$FORWARD" ]; then upstream "$KNS"; upstream "$MNS"; fi

# ---- kvnet ------------------------------------------------------------------------------
KVNET_RESOLV_CONF=$DIR/resolv.conf ip netns exec "$KNS" "$T"/release/kvnetd \
  --config-dir "$DIR/k/etc" --state-dir "$DIR/k/lib" --run-dir "$DIR/k/run" --log info \
  2>"$DIR/kvnetd.log" &
KPID=$!
export KVNET_SOCKET=$DIR/k/run/kvnetd.sock
for _ in $(seq 200); do "$KVNET" net-list >/dev/null 2>&1 && break; sleep 0.05; done
"$KVNET" net-list >/dev/null || die "kvnetd did not come up"
"$KVNET" net-destroy default >/dev/null 2>&1 || true
cat >"$DIR/dnsbench.xml" <<XML
<network><name>dnsbench</name><forward mode='nat'/><bridge name='kvdns0'/>
<domain name='bench.test' localOnly='yes'/>
<dns>$DNSXML</dns>
<ip address='10.78.0.1' netmask='255.255.255.0'><dhcp><range start='10.78.0.2' end='10.78.0.254'/></dhcp></ip></network>
XML
"$KVNET" net-define "$DIR/dnsbench.xml" >/dev/null
"$KVNET" net-start dnsbench >/dev/null
join_bridge "$KNS" "$KCL"

# ---- dnsmasq, libvirt's conf ---------------------------------------------------------------
ip -n "$MNS" link add kvdns0 type bridge stp_state 0 forward_delay 0
ip -n "$MNS" addr add 10.78.0.1/24 dev kvdns0
ip -n "$MNS" link set kvdns0 up
: >"$DIR/hostsfile"
cat >"$DIR/dnsmasq.conf" <<CONF
strict-order
local=/bench.test/
domain=bench.test
expand-hosts
pid-file=$DIR/dnsmasq.pid
except-interface=lo
bind-dynamic
interface=kvdns0
dhcp-range=10.78.0.2,10.78.0.254,255.255.255.0
dhcp-no-override
dhcp-authoritative
dhcp-lease-max=253
dhcp-hostsfile=$DIR/hostsfile
addn-hosts=$DIR/addnhosts
resolv-file=$DIR/resolv.conf
dhcp-leasefile=$DIR/dnsmasq.leases
CONF
ip netns exec "$MNS" dnsmasq --keep-in-foreground --conf-file="$DIR/dnsmasq.conf" \
  2>"$DIR/dnsmasq.log" &
MPID=$!
join_bridge "$MNS" "$MCL"

# ---- runs -----------------------------------------------------------------------------------
ticks() { awk '{print $14 + $15}' /proc/"$1"/stat; }
rss() { awk '/VmRSS/ {print $2}' /proc/"$1"/status; }
HZ=$(getconf CLK_TCK)
udperr() { # host-ns -> "RcvbufErrors SndbufErrors" of its UDP stack
  ip netns exec "$1" awk '/^Udp:/ {n++; if (n==1) for (i=2;i<=NF;i++) h[$i]=i; else print $h["RcvbufErrors"], $h["SndbufErrors"]}' /proc/net/snmp
}
# busy and total ticks of the whole machine (all CPUs; iowait counts as idle)
machine() { awk '/^cpu / {print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat; }
run() { # label client-ns server-pid round host-ns
  local out=$DIR/perf-$1-$4 t0 t1 e0 e1 m0 m1
  e0=$(udperr "$5")
  t0=$(ticks "$3")
  m0=$(machine)
  timeout $((SECS + 60)) ip netns exec "$2" dnsperf -s 10.78.0.1 -d "$DIR/names" \
    -l "$SECS" -c "$CLIENTS" -q "$OUTST" >"$out" 2>&1 || die "dnsperf failed: $(tail -3 "$out")"
  t1=$(ticks "$3")
  m1=$(machine)
  e1=$(udperr "$5")
  kill -0 "$3" 2>/dev/null || die "$1 server died during round $4"
  awk -v l="$1" -v r="$4" -v cpu="$(( (t1 - t0) * 1000 / HZ ))" -v s="$SECS" -v e0="$e0" -v e1="$e1" \
    -v m0="$m0" -v m1="$m1" -v hz="$HZ" '
    /Queries sent:/ {sent=$3}
    BEGIN {split(e0, w0, " "); split(e1, w1, " "); split(m0, a, " "); split(m1, b, " ")
      busy = (b[1] - a[1]) * 1000 / hz; tot = (b[2] - a[2]) * 1000 / hz}
    /Queries completed:/ {done=$3}
    /Queries lost:/ {lost=$3}
    /Response codes:/ {sub(/.*Response codes: */, ""); rc=$0}
    /Queries per second:/ {qps=$4}
    /Average Latency/ {avg=$4; mn=$6; mx=$8; sub(/,/, "", mn); sub(/\)/, "", mx)}
    /Latency StdDev/ {sd=$4}
    /Average packet size/ {rsz=$NF}
    END {printf "| %s | %d | %.0f | %.3f %% | %.3f | %.3f | %.3f | %.3f | %.2f s (%.0f %%) | %.1f | %.0f %% | %.1f | %s | %s B | %d / %d |\n",
      l, r, qps, sent ? 100*lost/sent : 0, avg*1000, mn*1000, mx*1000, sd*1000, cpu/1000,
      cpu/10/s, done ? cpu*1000/done : 0, tot ? 100*busy/tot : 0, done ? (busy-cpu)*1000/done : 0,
      rc, rsz, w1[1]-w0[1], w1[2]-w0[2]}' "$out" | tee -a "$DIR/rows"
}
rk0=$(rss "$KPID"); rm0=$(rss "$MPID")
echo "kvnet $(git describe --always --dirty 2>/dev/null || echo '?'), dnsmasq $(dnsmasq --version | awk 'NR==1 {print $3}'), dnsperf $(dpkg-query -W -f='${Version}' dnsperf 2>/dev/null || echo '?'), $(date -u +%F), $(nproc) cores, kernel $(uname -r)"
if [ -n "$FORWARD" ]; then
  echo "dnsperf -s 10.78.0.1 -d NAMES -l $SECS -c $CLIENTS -q $OUTST; NAMES = $HOSTS x 'fX.up.test A', round robin, each forwarded to the upstream on 127.0.0.2"
else
  echo "dnsperf -s 10.78.0.1 -d NAMES -l $SECS -c $CLIENTS -q $OUTST; NAMES = $HOSTS x 'hX.bench.test A', round robin"
fi
echo
echo "| server | round | queries/s | lost | avg latency ms | min ms | max ms | stddev ms | server CPU (of one core) | server CPU µs/query | machine busy | rest µs/query | response codes | avg response | server UDP drops rcvbuf / sndbuf |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
: >"$DIR/rows"
for r in $(seq "$ROUNDS"); do
  run kvnet "$KCL" "$KPID" "$r" "$KNS"
  run dnsmasq "$MCL" "$MPID" "$r" "$MNS"
done
med() { # label column -> median over rounds
  awk -F'|' -v l="$1" -v c="$2" '$2 ~ "^ "l" $" {gsub(/[ %]/, "", $c); print $c}' "$DIR/rows" |
    sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'
}
echo
echo "| median of $ROUNDS rounds | queries/s | lost % | avg latency ms | max latency ms | server CPU µs/query | rest µs/query |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
for s in kvnet dnsmasq; do
  printf '| %s | %.0f | %.3f | %.3f | %.3f | %.1f | %.1f |\n' "$s" "$(med $s 4)" "$(med $s 5)" "$(med $s 6)" "$(med $s 8)" "$(med $s 11)" "$(med $s 13)"
done
awk -v k="$(med kvnet 4)" -v m="$(med dnsmasq 4)" 'BEGIN {printf "\nkvnet / dnsmasq qps: %.2fx\n", k/m}'
# "rest" is the machine's CPU per query minus the server's: dnsperf and the kernel's
# path for the queries, which do not depend on the server. When the CPU is what limits,
# qps is cores / (rest + server), so a server that cost nothing at all would reach at most
# (rest + dnsmasq's) / rest times dnsmasq's qps.
awk -v r="$(med dnsmasq 13)" -v d="$(med dnsmasq 11)" -v k="$(med kvnet 11)" 'BEGIN {
  if (r > 0) printf "CPU per query, whole machine: kvnet %.1f µs, dnsmasq %.1f µs; a server costing nothing: %.1f µs, at most %.2fx dnsmasq on this machine\n", r + k, r + d, r, (r + d) / r}'
echo "RSS kB before -> after: kvnetd $rk0 -> $(rss "$KPID") (whole daemon), dnsmasq $rm0 -> $(rss "$MPID")"
w=$(grep -c -E 'WARN|ERROR' "$DIR/kvnetd.log" || true)
echo "kvnetd log: $w WARN/ERROR lines"
grep -E 'WARN|ERROR' "$DIR/kvnetd.log" | sed 's/^/  /' | head -20 || true
