#!/bin/sh
# Captures the vtysh JSON the doctor's FRR check parses (crates/daemon/src/doctor/frr.rs),
# from real FRR: three "hosts" in network namespaces on one underlay bridge, VTEPs
# 10.255.0.1-3 on lo, VNI 100 on every host and VNI 200 on host 1 only, frr.conf from
# `kvnet fabric-config`. FRR runs with every path under a temporary directory (nothing
# in /etc/frr or /var/run/frr). Everything is removed on exit, even on failure.
#
#   sudo crates/daemon/src/doctor/testdata/capture-frr.sh [mesh|rr] [OUTDIR]
#
# Needs root, frr (zebra, bgpd, vtysh) and the kvnet binary ($KVNET, default
# target/debug/kvnet, or $CARGO_TARGET_DIR/debug/kvnet).
set -eu
MODE=${1:-mesh}
OUT=${2:-$(dirname "$0")}
KVNET=${KVNET:-${CARGO_TARGET_DIR:-target}/debug/kvnet}
FRR=/usr/lib/frr
TAG=kvf$$
WORK=$(mktemp -d /tmp/kvnet-frr.XXXXXX)
chmod 755 "$WORK"  # the daemons drop to user frr
U=${TAG}u

cleanup() {
    set +e
    pids=$(cat "$WORK"/*/*.pid 2>/dev/null)
    for p in $pids; do kill "$p" 2>/dev/null; done
    # Wait for them to exit, so that nothing of theirs outlives the script.
    for _ in $(seq 1 50); do
        alive=
        for p in $pids; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ -z "$alive" ] && break
        sleep 0.1
    done
    for ns in $U ${TAG}1 ${TAG}2 ${TAG}3; do ip netns del "$ns" 2>/dev/null; done
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

case $MODE in
mesh) RR= ;;
rr) RR='route-reflectors = ["host1"]' ;;
*) echo "usage: $0 [mesh|rr] [OUTDIR]" >&2; exit 2 ;;
esac
cat > "$WORK/fabric.toml" <<EOT
asn = 65000
$RR
[[host]]
name = "host1"
vtep = "10.255.0.1"
[[host]]
name = "host2"
vtep = "10.255.0.2"
[[host]]
name = "host3"
vtep = "10.255.0.3"
EOT

ip netns add $U
ip -n $U link add ul type bridge
ip -n $U link set ul up
for i in 1 2 3; do
    ns=$TAG$i
    ip netns add "$ns"
    ip link add "${TAG}h$i" netns "$ns" type veth peer name "p$i" netns $U
    ip -n $U link set "p$i" master ul up
    ip -n "$ns" link set lo up
    ip -n "$ns" link set "${TAG}h$i" name eth0
    ip -n "$ns" addr add "172.31.255.$i/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" addr add "10.255.0.$i/32" dev lo
    for j in 1 2 3; do
        [ "$i" = "$j" ] || ip -n "$ns" route add "10.255.0.$j/32" via "172.31.255.$j"
    done
    vnis=100
    [ "$i" = 1 ] && vnis="100 200"
    for v in $vnis; do
        ip -n "$ns" link add "br$v" type bridge
        ip -n "$ns" link add "vxlan$v" type vxlan id "$v" local "10.255.0.$i" dstport 4789 nolearning
        ip -n "$ns" link set "vxlan$v" master "br$v" addrgenmode none mtu 1450
        ip -n "$ns" link set "vxlan$v" type bridge_slave neigh_suppress on learning off
        ip -n "$ns" link set "vxlan$v" up
        ip -n "$ns" link set "br$v" up
    done

    d=$WORK/host$i
    mkdir -p "$d"
    chown frr:frr "$d"
    "$KVNET" fabric-config --fabric "$WORK/fabric.toml" --host "host$i" > "$d/frr.conf" 2>/dev/null
    : > "$d/empty.conf"
    chown frr:frr "$d"/*.conf
    common="-d -P 0 --vty_socket $d -z $d/zserv.api -f $d/empty.conf"
    ip netns exec "$ns" $FRR/zebra $common -i "$d/zebra.pid" -s 90000000 --log "file:$d/zebra.log"
    ip netns exec "$ns" $FRR/bgpd $common -i "$d/bgpd.pid" --log "file:$d/bgpd.log"
    ip netns exec "$ns" vtysh --vty_socket "$d" -f "$d/frr.conf"
done

vty() { ip netns exec "$TAG$1" vtysh --vty_socket "$WORK/host$1" -c "$2"; }
# Sessions up and type-3 routes exchanged (datacenter timers: seconds).
for _ in $(seq 1 30); do
    n=$(vty 1 'show evpn vni 100 json' | grep -o '"10\.255\.0\.[23]"' | sort -u | wc -l)
    [ "$n" = 2 ] && break
    sleep 1
done
vty 1 'show bgp l2vpn evpn summary json' > "$OUT/$MODE-host1-summary.json"
vty 1 'show evpn vni json' > "$OUT/$MODE-host1-vni.json"
vty 3 'show bgp l2vpn evpn summary json' > "$OUT/$MODE-host3-summary.json"
vty 3 'show evpn vni json' > "$OUT/$MODE-host3-vni.json"

if [ "$MODE" = mesh ]; then
    # Host 2's bgpd stops: host 1 notices at the hold time (9 s).
    kill "$(cat "$WORK/host2/bgpd.pid")"
    for _ in $(seq 1 20); do
        s=$(vty 1 'show bgp l2vpn evpn summary json' | tr -d ' \n' | grep -o '"10.255.0.2":{[^}]*"state":"[A-Za-z]*"' | grep -o 'state":"[A-Za-z]*' || true)
        [ -n "$s" ] && [ "$s" != 'state":"Established' ] && break
        sleep 1
    done
    vty 1 'show bgp l2vpn evpn summary json' > "$OUT/mesh-host1-peer-down-summary.json"
    vty 1 'show evpn vni json' > "$OUT/mesh-host1-peer-down-vni.json"
    # No daemon answering: what vtysh says and its exit status.
    kill "$(cat "$WORK/host3/bgpd.pid")" "$(cat "$WORK/host3/zebra.pid")"
    sleep 1
    set +e
    ip netns exec "${TAG}3" vtysh --vty_socket "$WORK/host3" -c 'show evpn vni json' \
        > "$OUT/frr-down.stdout" 2> "$OUT/frr-down.stderr"
    echo $? > "$OUT/frr-down.status"
    set -e
fi
echo "captured into $OUT"
