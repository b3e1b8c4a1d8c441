#!/usr/bin/env bash
# Anti-spoofing: what the port filter costs guest-to-guest TCP, with 1,000 filtered ports
# on the bridge, side by side with the same network unfiltered, in one run.
#   bench/portfilter.sh [--ports N] [--rounds N] [--secs S]
# kvnetd runs in a "host" namespace with one NAT network (10.89.0.0/24); two guest
# namespaces on veth links (MACs 52:54:00:89:00:0a/0b, static hosts .10/.11: their
# addresses are bound by MAC; their own MACs are learned from their first frame) and
# PORTS-2 TAPs from `port-create` make PORTS ports. Each round measures iperf3 (one TCP
# stream, SECS seconds, guest .10 -> .11) with the network unfiltered (no bridge table
# at all) and then filtered (`<kvnet:filterref filter='clean-traffic'/>`: every frame of
# every port checked); the network is restarted between the two, its ports kept. Also
# timed: a port-create (CLI included) with PORTS filtered ports present.
# KVNET_BENCH_LOG=debug KVNET_BENCH_KEEP_LOG=FILE keep kvnetd's log.
# Root only; only the namespaces it creates are touched, removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
PORTS=1000 ROUNDS=5 SECS=5
while [ $# -gt 0 ]; do
  case "$1" in
    --ports) PORTS=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --secs) SECS=$2; shift 2 ;;
    *) echo "usage: $0 [--ports N] [--rounds N] [--secs S]" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "bench needs root (network namespaces)" >&2; exit 1; }
command -v iperf3 >/dev/null ||
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends iperf3 >/dev/null
cargo build --release --locked -q --bin kvnetd --bin kvnet
T=$(realpath -m "${CARGO_TARGET_DIR:-target}")
KVNET=$T/release/kvnet
H=kvpfh-$$ A=kvpfa-$$ B=kvpfb-$$
DIR=$(mktemp -d /tmp/kvpf.XXXXXX)
RUN=$(mktemp -d /dev/shm/kvpf.XXXXXX)
DPID= SPID=
cleanup() {
  [ -n "$SPID" ] && kill "$SPID" 2>/dev/null
  [ -n "$DPID" ] && kill "$DPID" 2>/dev/null && wait "$DPID" 2>/dev/null
  drop_netns "$A" "$B" "$H"
  # KVNET_BENCH_LOG=debug KVNET_BENCH_KEEP_LOG=FILE: kvnetd's log, kept.
  [ -z "${KVNET_BENCH_KEEP_LOG:-}" ] || cp "$DIR/kvnetd.log" "$KVNET_BENCH_KEEP_LOG"
  rm -rf "$DIR" "$RUN"
}
trap cleanup EXIT INT TERM
for ns in "$H" "$A" "$B"; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
ip netns exec "$H" "$T"/release/kvnetd --config-dir "$DIR/etc" --state-dir "$DIR/lib" \
  --run-dir "$RUN" --log "${KVNET_BENCH_LOG:-warn}" 2>"$DIR/kvnetd.log" &
DPID=$!
export KVNET_SOCKET=$RUN/kvnetd.sock
for _ in $(seq 200); do "$KVNET" net-list >/dev/null 2>&1 && break; sleep 0.05; done
"$KVNET" net-destroy default >/dev/null

net() { # filterref element or nothing
  cat <<XML
<network><name>pf</name>
<metadata><kvnet:network xmlns:kvnet='http://kvnet.org/xmlns/network/1.0'>$1</kvnet:network></metadata>
<forward mode='nat'/><bridge name='kvpf0'/>
<ip address='10.89.0.1' prefix='22'><dhcp><range start='10.89.1.0' end='10.89.3.254'/>
<host mac='52:54:00:89:00:0a' ip='10.89.0.10'/><host mac='52:54:00:89:00:0b' ip='10.89.0.11'/>
</dhcp></ip></network>
XML
}
net "" >"$DIR/off.xml"
net "<kvnet:filterref filter='clean-traffic'/>" >"$DIR/on.xml"
"$KVNET" net-define "$DIR/off.xml" >/dev/null
"$KVNET" net-start pf >/dev/null

guest() { # ns port mac addr
  ip -n "$H" link add "$2" type veth peer name eth0 netns "$1"
  ip -n "$1" link set eth0 address "$3"
  ip -n "$1" addr add "$4"/22 dev eth0
  ip -n "$H" link set "$2" master kvpf0 up
  ip -n "$1" link set eth0 up
}
guest "$A" vpfa 52:54:00:89:00:0a 10.89.0.10
guest "$B" vpfb 52:54:00:89:00:0b 10.89.0.11
ip netns exec "$B" iperf3 -s -D -I "$DIR/iperf.pid" >/dev/null
sleep 0.3
SPID=$(cat "$DIR/iperf.pid")

echo "creating $((PORTS - 2)) ports..." >&2
for _ in $(seq $((PORTS - 2))); do "$KVNET" port-create pf >/dev/null; done

iperf() { # Gbit/s of one stream A -> B
  # Client and server each on a core of their own: runs vary less.
  ip netns exec "$A" iperf3 -A 0,1 -c 10.89.0.11 -t "$SECS" -J |
    python3 -c 'import json,sys; e=json.load(sys.stdin)["end"]; print("%.2f" % (e["sum_received"]["bits_per_second"]/1e9))'
}
restart_as() { # off|on
  "$KVNET" net-define "$DIR/$1.xml" >/dev/null
  "$KVNET" net-destroy pf >/dev/null
  "$KVNET" net-start pf >/dev/null
  # The veth guests are not kvnet's ports: put them back on the re-created bridge.
  ip -n "$H" link set vpfa master kvpf0 up
  ip -n "$H" link set vpfb master kvpf0 up
  sleep 1
  ip netns exec "$A" ping -q -c 3 -W 1 10.89.0.11 >/dev/null ||
    { echo "guests cannot reach each other ($1)" >&2; exit 1; }
}

echo "kvnet $(git rev-parse --short HEAD)$(git diff --quiet || echo -dirty), $(date -u +%F), $(nproc) cores, kernel $(uname -r)"
echo
: >"$DIR/off" ; : >"$DIR/on"
for r in $(seq "$ROUNDS"); do
  restart_as off
  [ -z "$(ip netns exec "$H" nft list tables | grep bridge || true)" ] ||
    { echo "a bridge table exists with nothing filtered" >&2; exit 1; }
  iperf >>"$DIR/off"
  restart_as on
  filtered=$(ip netns exec "$H" nft -j list set bridge kvnet filtered | grep -o '"vnet[0-9]*"\|"vpf[ab]"' | wc -l)
  [ "$filtered" = "$PORTS" ] || { echo "$filtered ports filtered, expected $PORTS" >&2; exit 1; }
  iperf >>"$DIR/on"
  echo "round $r: off $(tail -1 "$DIR/off") on $(tail -1 "$DIR/on") Gbit/s" >&2
done
drops=$(ip netns exec "$H" nft list counter bridge kvnet port_vpfa | awk '/packets/ {print $2}')
time_create() { # file
  : >"$1"
  for _ in $(seq 10); do
    us "$KVNET" port-create pf --ifname vpfx >>"$1"
    "$KVNET" port-delete vpfx >/dev/null
  done
}
time_create "$DIR/create"
restart_as off
time_create "$DIR/create_off"
fmed() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
off=$(fmed <"$DIR/off") on=$(fmed <"$DIR/on")
echo "| ports on the bridge | unfiltered (median of $ROUNDS) | filtered, every port | filtered / unfiltered | guest's frames dropped | port-create, $PORTS ports unfiltered (median) | filtered |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
printf '| %s | %s Gbit/s | %s Gbit/s | %s %% | %s | %s | %s |\n' "$PORTS" "$off" "$on" \
  "$(awk -v a="$on" -v b="$off" 'BEGIN {printf "%.1f", 100 * a / b}')" "$drops" \
  "$(ms "$(median <"$DIR/create_off")")" "$(ms "$(median <"$DIR/create")")"
echo "rounds: off $(tr '\n' ' ' <"$DIR/off"); on $(tr '\n' ' ' <"$DIR/on")"
echo "kvnetd log (warn and up): $(grep -c . "$DIR/kvnetd.log" || true) lines"
sed -E 's/^[^ ]+ +//' "$DIR/kvnetd.log" | sort | uniq -c | sort -rn | head -5
