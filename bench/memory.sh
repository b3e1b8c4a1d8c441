#!/usr/bin/env bash
# kvnetd memory with N active NAT networks, each serving DHCP and DNS and holding one real
# lease (busybox udhcpc in a client namespace per network). Prints VmRSS and PSS of the
# daemon. With --with-libvirt, bench/peers/libvirt.sh runs in the same invocation and
# prints libvirtd's + its dnsmasq processes' RSS for the same number of networks.
#   bench/memory.sh [--nets N] [--with-libvirt]
# Root only; kvnetd and the clients live in namespaces this script creates and removes.
set -euo pipefail
cd "$(dirname "$0")/.."
NETS=20 LIBVIRT=0
while [ $# -gt 0 ]; do
  case "$1" in
    --nets) NETS=$2; shift 2 ;;
    --with-libvirt) LIBVIRT=1; shift ;;
    *) echo "usage: $0 [--nets N] [--with-libvirt]" >&2; exit 2 ;;
  esac
done
die() { echo "memory.sh: $*" >&2; exit 1; }
case "$NETS" in '' | *[!0-9]*) die "--nets takes a positive integer" ;; esac
[ "$NETS" -ge 1 ] && [ "$NETS" -le 250 ] || die "--nets must be 1..250"
[ "$(id -u)" = 0 ] || die "needs root (network namespaces)"
command -v busybox >/dev/null || die "busybox missing (scripts/deps.sh test installs it)"
cargo build --release --locked -q --bin kvnetd --bin kvnet
T=$(realpath -m "${CARGO_TARGET_DIR:-target}")
KVNET=$T/release/kvnet
. bench/lib.sh

NS=kvmem-$$
DIR=$(mktemp -d /tmp/kvmem.XXXXXX)
DPID=
cleanup() {
  trap - EXIT INT TERM
  [ -n "$DPID" ] && kill "$DPID" 2>/dev/null && wait "$DPID" 2>/dev/null
  for i in $(seq 1 "$NETS"); do ip netns del "$NS-c$i" 2>/dev/null || true; done
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "$DIR"
}
trap cleanup EXIT INT TERM
ip netns add "$NS"
ip netns exec "$NS" ip link set lo up
ip netns exec "$NS" "$T"/release/kvnetd --config-dir "$DIR/etc" --state-dir "$DIR/lib" \
  --run-dir "$DIR/run" --log warn 2>"$DIR/kvnetd.log" &
DPID=$!
export KVNET_SOCKET=$DIR/run/kvnetd.sock
for _ in $(seq 200); do "$KVNET" net-list >/dev/null 2>&1 && break; sleep 0.05; done
"$KVNET" net-list >/dev/null || die "kvnetd did not come up: $(cat "$DIR/kvnetd.log")"
"$KVNET" net-destroy default >/dev/null
"$KVNET" net-undefine default >/dev/null

cat >"$DIR/udhcpc.sh" <<'EOF'
#!/bin/sh
[ "$1" = bound ] && ip addr add "$ip/$mask" dev "$interface"
exit 0
EOF
chmod 755 "$DIR/udhcpc.sh"
leases=0
for i in $(seq 1 "$NETS"); do
  net_xml "m$i" "kvm$i" "$i" 251 >"$DIR/m$i.xml"
  "$KVNET" net-define "$DIR/m$i.xml" >/dev/null
  "$KVNET" net-start "m$i" >/dev/null
  c=$NS-c$i
  ip netns add "$c"
  ip netns exec "$NS" ip link add "kvmv$i" type veth peer name eth0 netns "$c"
  ip netns exec "$NS" ip link set "kvmv$i" master "kvm$i" up
  ip netns exec "$c" ip link set lo up
  ip netns exec "$c" ip link set eth0 up
  if ip netns exec "$c" busybox udhcpc -q -n -f -i eth0 -t 5 -T 1 -x "hostname:guest$i" \
    -s "$DIR/udhcpc.sh" >/dev/null 2>&1; then
    leases=$((leases + 1))
  fi
done
# Every network also answers a DNS query, so its DNS service has run its code paths.
for i in $(seq 1 "$NETS"); do
  ip netns exec "$NS-c$i" busybox nslookup "guest$i" "10.251.$i.1" >/dev/null 2>&1 || true
done
listed=0
for i in $(seq 1 "$NETS"); do
  listed=$((listed + $("$KVNET" net-dhcp-leases "m$i" | grep -c "guest$i" || true)))
done
rss=$(awk '/^VmRSS/ {print $2}' /proc/"$DPID"/status)
pss=$(awk '/^Pss:/ {print $2}' /proc/"$DPID"/smaps_rollup)
threads=$(awk '/^Threads/ {print $2}' /proc/"$DPID"/status)

echo "kvnet $(git describe --always --dirty 2>/dev/null || echo '?'), $(date -u +%F), $(nproc) cores, kernel $(uname -r)"
echo "$NETS NAT networks active, DHCP + DNS served on each; leases granted: $leases, listed by net-dhcp-leases: $listed"
echo "kvnetd: VmRSS $rss kB, PSS $pss kB, $threads threads"
echo "kvnetd log (warn and up): $(wc -l <"$DIR/kvnetd.log") lines"
if [ "$LIBVIRT" = 1 ]; then
  echo
  bench/peers/libvirt.sh --reps 1 --nets "$NETS" | grep -E "^libvirt (RSS|[0-9])|^\| libvirt" || true
fi
