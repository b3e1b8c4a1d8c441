#!/usr/bin/env bash
# A network across three hosts, all in network namespaces of this machine: an underlay
# namespace (a bridge), three host namespaces each with FRR (zebra + bgpd, configured by
# `kvnet fabric-config`) and its own kvnetd, one overlay NAT network defined the same on
# each, a guest on each host. It checks leases (each from its host's slice), reach across
# hosts, NAT through each guest's own host, a guest's move, a kvnetd killed and restarted,
# a host's FRR stopped; prints what happened and the figures; removes everything on any
# exit; exits 0 only when every check held.
#   scripts/fabric-demo.sh          (KVNET_BIN_DIR=DIR: use the kvnetd and kvnet in DIR)
set -uo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "fabric-demo needs root (network namespaces)" >&2; exit 1; }
for p in vtysh iperf3 busybox; do
  command -v "$p" >/dev/null || { echo "fabric-demo needs $p (apt-get install frr iperf3 busybox-static)" >&2; exit 1; }
done
# KVNET_BIN_DIR: binaries already built (the root test runs the demo with its own).
if [ -n "${KVNET_BIN_DIR:-}" ]; then
  T=$KVNET_BIN_DIR
else
  cargo build --release --locked -q --bin kvnetd --bin kvnet || exit 1
  T=$(realpath -m "${CARGO_TARGET_DIR:-target}")/release
fi
P=fd$$
DIR=$(mktemp -d /tmp/kvfabric.XXXXXX)
NSS=()
FAILED=0
. bench/lib.sh
. scripts/fabric-lib.sh

trap fabric_cleanup EXIT INT TERM

check() { # description command...
  local what=$1; shift
  if "$@" >/dev/null 2>&1; then echo "  ok    $what"; else echo "  FAIL  $what"; FAILED=1; fi
}

fabric_toml 3 >"$DIR/fabric.toml"
cat >"$DIR/ov.xml" <<'EOF'
<network>
  <name>ov</name>
  <forward mode='nat'/>
  <bridge name='kvov0'/>
  <ip address='10.77.0.1' prefix='24'>
    <dhcp><range start='10.77.0.10' end='10.77.0.249'/></dhcp>
  </ip>
  <metadata>
    <kvnet:network xmlns:kvnet='http://kvnet.org/xmlns/network/1.0'>
      <kvnet:overlay vni='4242' dev='lo'/>
    </kvnet:network>
  </metadata>
</network>
EOF

echo "== the lab"
fabric_underlay
for h in 1 2 3; do
  fabric_host "$h" 3 || exit 1
  kv "$h" net-define "$DIR/ov.xml" >/dev/null && kv "$h" net-start ov >/dev/null || { echo "h$h: overlay did not start"; exit 1; }
  fabric_frr "$h" || exit 1
done
gw_macs=$(for h in 1 2 3; do in_ns "$P-h$h" cat /sys/class/net/kvov0/address; done | sort -u)
check "one gateway MAC on every host (anycast, from the VNI: $gw_macs)" test "$gw_macs" = 02:6b:76:00:10:92
t0=$EPOCHREALTIME
for _ in $(seq 300); do
  n=0
  for h in 1 2 3; do
    [ "$(in_ns "$P-h$h" bridge fdb show dev kvx4242 | grep -c '^00:00:00:00:00:00')" = 2 ] && n=$((n + 1))
  done
  [ "$n" = 3 ] && break; sleep 0.1
done
t1=$EPOCHREALTIME
check "every host's flood list has the other two VTEPs (EVPN type-3)" test "$n" = 3
echo "  sessions up and VNIs exchanged after $(awk -v a="${t0/./}" -v b="${t1/./}" 'BEGIN {printf "%.1f", (b-a)/1e6}') s"

echo "== guests"
guest() { # host name mac -> prints the leased address (runs in a subshell: its
  # namespace is recorded for the cleanup beforehand)
  local h=$1 g=$P-$2 mac=$3
  ip netns add "$g"; in_ns "$g" ip link set lo up
  in_ns "$P-h$h" ip link add "$2" type veth peer name eth0 netns "$g"
  in_ns "$g" ip link set eth0 address "$mac"
  in_ns "$P-h$h" ip link set "$2" master kvov0 up
  in_ns "$g" ip link set eth0 mtu 1450 up
  in_ns "$g" busybox udhcpc -q -n -f -i eth0 -t 5 -T 1 -s /bin/true 2>&1 |
    sed -n 's/.*lease of \([0-9.]*\).*/\1/p' | head -1
}
NSS+=("$P-g1" "$P-g1b" "$P-g2" "$P-g3" "$P-g4")
A1=$(guest 1 g1 52:54:00:0e:00:11); A2=$(guest 2 g2 52:54:00:0e:00:12); A3=$(guest 3 g3 52:54:00:0e:00:13)
A1b=$(guest 1 g1b 52:54:00:0e:00:14); A4=$(guest 3 g4 52:54:00:0e:00:15)
echo "  g1 $A1 (h1), g1b $A1b (h1), g2 $A2 (h2), g3 $A3 (h3), g4 $A4 (h3)"
inslice() { # addr host: h's third of .10-.249 (80 addresses each)
  local last=${1##*.} lo=$((10 + ($2 - 1) * 80)); [ "$last" -ge "$lo" ] && [ "$last" -lt $((lo + 80)) ]
}
check "g1's lease is from h1's slice" inslice "$A1" 1
check "g2's lease is from h2's slice" inslice "$A2" 2
check "g3's lease is from h3's slice" inslice "$A3" 3
for g in g1 g1b g2 g3 g4; do
  eval "a=\$A${g#g}"; in_ns "$P-$g" ip addr add "$a/24" dev eth0; in_ns "$P-$g" ip route add default via 10.77.0.1
done
reach() { in_ns "$P-$1" ping -c 1 -W 1 "$2"; }
check "g1 (h1) reaches g2 (h2)" reach g1 "$A2"
check "g2 (h2) reaches g3 (h3)" reach g2 "$A3"
check "g3 (h3) reaches g1 (h1)" reach g3 "$A1"
for h in 1 2 3; do
  g=g$h
  check "g$h goes out through h$h's own NAT" reach "$g" 203.0.113.2
done

echo "== figures"
lat() { in_ns "$P-$1" ping -q -c 100 -i 0.01 "$2" | awk -F/ '/rtt/ {print $5}'; }
tput() { # from to -> Mbit/s
  in_ns "$P-$2" iperf3 -s -1 -D -p 5201 >/dev/null 2>&1; sleep 0.3
  in_ns "$P-$1" iperf3 -c "$3" -p 5201 -t 3 -J 2>/dev/null |
    python3 -c 'import json,sys; print("%.0f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e6))'
}
L_same=$(lat g1 "$A1b"); L_x=$(lat g1 "$A2")
B_same=$(tput g1 g1b "$A1b"); B_x=$(tput g1 g2 "$A2")
echo "  ping g1 -> g1b (same host) $L_same ms, g1 -> g2 (across hosts) $L_x ms"
echo "  TCP g1 -> g1b (same host) $B_same Mbit/s, g1 -> g2 (across) $B_x Mbit/s ($(awk -v a="$B_x" -v b="$B_same" 'BEGIN {printf "%.0f", 100*a/b}') %)"

echo "== a guest moves (g3: h3 -> h1, same MAC and address)"
# g2 pings g3 every 10 ms across the move: the replies missing are the outage.
in_ns "$P-g2" ping -i 0.01 -c 300 -W 1 "$A3" >"$DIR/move" 2>&1 &
mp=$!
sleep 0.3
in_ns "$P-h3" ip link del g3
in_ns "$P-h1" ip link add g3m type veth peer name eth0 netns "$P-g3"
in_ns "$P-g3" ip link set eth0 address 52:54:00:0e:00:13
in_ns "$P-h1" ip link set g3m master kvov0 up
in_ns "$P-g3" ip link set eth0 mtu 1450 up
in_ns "$P-g3" ip addr add "$A3/24" dev eth0 2>/dev/null
in_ns "$P-g3" ip route replace default via 10.77.0.1
in_ns "$P-g3" busybox arping -U -c 1 -I eth0 "$A3" >/dev/null 2>&1
wait "$mp"
check "g2 (h2) reaches the moved g3 (now on h1)" reach g2 "$A3"
lostn=$(awk '/packets transmitted/ {print $1 - $4}' "$DIR/move")
echo "  pings every 10 ms across the move: $lostn of 300 unanswered (about $((lostn * 10)) ms without traffic)"
check "traffic to the moved g3 resumed within a second" test "$lostn" -lt 100
for _ in $(seq 50); do vtysh_h 2 -c 'show evpn mac vni 4242 mac 52:54:00:0e:00:13 json' 2>/dev/null | grep -q '"remoteVtep":"10.255.0.1"' && break; sleep 0.1; done
check "h2's EVPN has g3 behind h1's VTEP (MAC mobility)" sh -c "ip netns exec $P-h2 vtysh --vty_socket $DIR/h2/frr -c 'show evpn mac vni 4242 mac 52:54:00:0e:00:13 json' | grep -q '\"remoteVtep\":\"10.255.0.1\"'"
check "g3 keeps its address: h1 acks it" sh -c "ip netns exec $P-g3 busybox udhcpc -q -n -f -i eth0 -t 5 -T 1 -r $A3 -s /bin/true 2>&1 | grep -q 'lease of $A3'"

echo "== kvnetd on h2 killed and restarted, g1 (h1) pinging g2 (h2) all along"
in_ns "$P-g1" ping -i 0.01 -c 300 -W 1 "$A2" >"$DIR/ping" 2>&1 &
pp=$!
sleep 0.5
pkill -9 -f "kvnetd --config-dir $DIR/h2/" ; sleep 0.3
start_kvnetd 2 || FAILED=1
wait "$pp"
check "no ping lost across h2's kvnetd restart" grep -q ' 0% packet loss' "$DIR/ping"
echo "  $(grep 'packets transmitted' "$DIR/ping")"
check "h2 adopted the overlay" sh -c "KVNET_SOCKET=$DIR/h2/run/kvnetd.sock $T/kvnet net-list | grep -q 'ov .*active'"
check "g3 (now h1) still reaches g4 (h3)" reach g3 "$A4"

echo "== FRR on h2 stops"
kill "$(cat "$DIR/h2/frr/bgpd.pid")" "$(cat "$DIR/h2/frr/zebra.pid")" 2>/dev/null
t0=$EPOCHREALTIME
for _ in $(seq 200); do
  vtysh_h 1 -c 'show bgp l2vpn evpn summary json' 2>/dev/null |
    python3 -c 'import json,sys; p=json.load(sys.stdin)["peers"]; sys.exit(0 if p["10.255.0.2"]["state"]!="Established" else 1)' && break
  sleep 0.1
done
t1=$EPOCHREALTIME
echo "  h1 saw h2's session down after $(awk -v a="${t0/./}" -v b="${t1/./}" 'BEGIN {printf "%.1f", (b-a)/1e6}') s"
check "g1 (h1) and g4 (h3) still reach each other" reach g1 "$A4"
check "g2 (h2) keeps its own gateway and NAT" reach g2 203.0.113.2
lost() { ! reach "$@"; }
check "g2 (h2) lost only its reach to the other hosts" lost g2 "$A1"

echo
if [ "$FAILED" = 0 ]; then echo "every check held"; else echo "some checks FAILED"; fi
exit "$FAILED"
