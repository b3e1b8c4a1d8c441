#!/usr/bin/env bash
# kvnet in five minutes, for a newcomer, as root on a fresh Debian machine:
# installs what it needs, builds kvnet, and boots a real QEMU guest on kvnet's built-in
# `default` NAT network, then tells in plain words what happened: DHCP lease, DNS answer
# forwarded to an upstream server, ping out through NAT, the lease list.
# Everything runs in network namespaces this script creates (unique names) and removes
# on exit, also on failure or Ctrl-C; the machine's own network is never touched.
#   ./scripts/demo.sh            (env: CARGO_TARGET_DIR is honoured)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
  echo "demo.sh: network namespaces, bridges and TAP devices need root: run it as root" >&2
  exit 1
fi

DEMO_NAME=demo.example # the one name the LAN's DNS server knows
DEMO_ADDR=198.51.100.7 # ... and its address
LAN_HOST=203.0.113.1   # the host's uplink
LAN_PEER=203.0.113.2   # the "LAN" machine: DNS server, ping target
GUEST=demo-vm
H="kvdemo-host-$$"
L="kvdemo-lan-$$"
tmp="$(mktemp -d /tmp/kvnet-demo.XXXXXX)"
qemu_pid=

say() { printf '%s\n' "$*"; }
step() { printf '\n== %s\n' "$*"; }
fail() {
  say "FAILED: $*" >&2
  exit 1
}
cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM
  say ""
  say "Cleaning up: stopping the guest and kvnetd, removing namespaces $H and $L and $tmp"
  # Only processes in the demo's own namespaces (kvnetd, QEMU, the DNS server).
  for ns in "$H" "$L"; do
    if [ -e "/run/netns/$ns" ]; then
      for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
    fi
  done
  for _ in $(seq 50); do
    [ -z "$(ip netns pids "$H" 2>/dev/null)$(ip netns pids "$L" 2>/dev/null)" ] && break
    sleep 0.1
  done
  for ns in "$H" "$L"; do
    [ -e "/run/netns/$ns" ] && ip netns del "$ns"
  done
  rm -rf "$tmp"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

step "1. Installing what the demo needs (scripts/deps.sh test: nftables, QEMU, busybox, a guest kernel)"
./scripts/deps.sh test
say "ok"

step "2. Building kvnet (cargo build --release; a few minutes the first time)"
if ! cargo build --release --locked --bin kvnetd --bin kvnet >"$tmp/build.log" 2>&1; then
  tail -n 30 "$tmp/build.log" >&2
  fail "cargo build"
fi
bin="${CARGO_TARGET_DIR:-target}/release"
kvnet() { "$bin/kvnet" --socket "$tmp/run/kvnetd.sock" "$@"; }
initrd="$(./scripts/guest/build-initramfs.sh)"
kernel="${KVNET_GUEST_KERNEL:-${KVNET_TEST_CACHE:-/var/cache/kvnet-test}/kernel/vmlinuz}"
say "ok: $bin/kvnetd and $bin/kvnet; guest kernel $(readlink -f "$kernel")"

step "3. A small lab in network namespaces"
ip netns add "$H"
ip netns add "$L"
ip -n "$H" link set lo up
ip -n "$L" link set lo up
ip -n "$H" link add wan0 type veth peer name lan0 netns "$L"
ip -n "$H" addr add "$LAN_HOST/24" dev wan0
ip -n "$H" link set wan0 up
ip -n "$L" addr add "$LAN_PEER/24" dev lan0
ip -n "$L" link set lan0 up
# The LAN's DNS server: answers A queries for DEMO_NAME, NXDOMAIN for the rest.
cat >"$tmp/dns.py" <<'EOF'
import socket, sys
name, addr, bind = sys.argv[1].lower(), bytes(map(int, sys.argv[2].split("."))), sys.argv[3]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((bind, 53))
while True:
    q, peer = s.recvfrom(512)
    i, labels = 12, []
    while i < len(q) and q[i]:
        labels.append(q[i + 1:i + 1 + q[i]].decode(errors="replace"))
        i += 1 + q[i]
    end = i + 5
    if len(q) < 17 or end > len(q):
        continue
    qname, is_a = ".".join(labels).lower(), q[end - 4:end - 2] == b"\0\1"
    known = qname == name
    r = bytearray(q[:end])
    r[2], r[3] = 0x81, 0x80 if known else 0x83
    r[6:12] = bytes([0, int(known and is_a), 0, 0, 0, 0])
    if known and is_a:
        r += bytes([0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]) + addr
    s.sendto(r, peer)
    print(f"query for {qname} from {peer[0]}: {'answered' if known else 'NXDOMAIN'}", flush=True)
EOF
ip netns exec "$L" python3 -u "$tmp/dns.py" "$DEMO_NAME" "$DEMO_ADDR" "$LAN_PEER" >"$tmp/dns.log" 2>&1 &
disown
say "namespace $H: the \"host\", where kvnetd runs; uplink wan0 $LAN_HOST/24"
say "namespace $L: the \"LAN\" behind it, $LAN_PEER/24, with a DNS server that knows $DEMO_NAME"

step "4. Starting kvnetd in $H (its config, state and sockets under $tmp)"
echo "nameserver $LAN_PEER" >"$tmp/resolv.conf"
KVNET_RESOLV_CONF="$tmp/resolv.conf" ip netns exec "$H" "$bin/kvnetd" \
  --config-dir "$tmp/etc" --state-dir "$tmp/lib" --run-dir "$tmp/run" \
  </dev/null >"$tmp/kvnetd.log" 2>&1 &
disown
for _ in $(seq 100); do
  kvnet net-list >/dev/null 2>&1 && ip -n "$H" link show virbr0 >/dev/null 2>&1 && break
  sleep 0.1
done
kvnet net-list >/dev/null 2>&1 || { cat "$tmp/kvnetd.log" >&2; fail "kvnetd did not start"; }
say "kvnetd is up with the built-in network (kvnet net-list):"
kvnet net-list | sed '/^ *$/d; s/^/    /'
say "It uses the LAN's server as its upstream DNS (from its resolv.conf: nameserver $LAN_PEER)."

step "5. Booting a QEMU guest \"$GUEST\" on virbr0 (TCG emulation, Debian cloud kernel, busybox)"
ip -n "$H" tuntap add dev kvdemo0 mode tap
ip -n "$H" link set kvdemo0 master virbr0 up
mac="52:54:00:de:$(printf '%02x:%02x' $((($$ >> 8) & 255)) $(($$ & 255)))"
t0=$(date +%s.%N)
timeout -s KILL 600 ip netns exec "$H" qemu-system-x86_64 -accel tcg -cpu max -m 256 \
  -nographic -nodefaults -serial stdio -no-reboot -kernel "$kernel" -initrd "$initrd" \
  -append "console=ttyS0 quiet panic=-1 kvnet.name=$GUEST kvnet.lookup=$DEMO_NAME kvnet.ping=$LAN_PEER kvnet.hold=120" \
  -netdev tap,id=n0,ifname=kvdemo0,script=no,downscript=no,vhost=off \
  -device "virtio-net-pci,netdev=n0,mac=$mac,romfile=" \
  </dev/null >"$tmp/console.log" 2>&1 &
qemu_pid=$!
disown
say "the guest's NIC (virtio-net, MAC $mac) is TAP device kvdemo0, a port of virbr0"
# The guest's /init reports each step as a "KVNET ..." line on its serial console.
marker() {
  local line
  for _ in $(seq 1200); do
    line="$(grep -a -m1 "KVNET $1" "$tmp/console.log" | tr -d '\r')" && {
      line="${line#*"KVNET $1"}"
      echo "${line# }"
      return 0
    }
    if grep -aq "KVNET done" "$tmp/console.log" || ! kill -0 "$qemu_pid" 2>/dev/null; then
      break
    fi
    sleep 0.2
  done
  say "guest console:" >&2
  cat "$tmp/console.log" >&2
  fail "the guest did not report \"$1\""
}
field() { tr ' ' '\n' <<<"$1" | sed -n "s/^$2=//p"; }
lease="$(marker "lease ")"
secs=$(echo "$(date +%s.%N) - $t0" | bc 2>/dev/null || python3 -c "print(round($(date +%s.%N) - $t0, 1))")
ip4="$(field "$lease" ip)"
say "- DHCP: kvnet gave the guest $ip4/$(field "$lease" mask), router $(field "$lease" router), DNS server $(field "$lease" dns)"
say "  ($(printf '%.1f' "$secs") s after QEMU started; the guest kernel had been up $(field "$lease" uptime) s)"
say "  kvnetd's log: $(grep -o 'DHCP[A-Z]* [0-9.]* [0-9a-f:]*.*network=default' "$tmp/kvnetd.log" | sed 's/ network=default//' | paste -sd';' | sed 's/;/; /g')"
dns="$(marker "dns $DEMO_NAME")"
case "$dns" in
  "-> $DEMO_ADDR") say "- DNS: the guest asked kvnet's DNS server (192.168.122.1) for $DEMO_NAME and got $DEMO_ADDR" ;;
  *) fail "the guest's lookup of $DEMO_NAME: $dns" ;;
esac
say "  kvnet does not know that name: it forwarded the query upstream; the LAN's DNS server logged:"
sed 's/^/    /' "$tmp/dns.log"
png="$(marker "ping $LAN_PEER")"
[ "$png" = ok ] || fail "the guest could not ping $LAN_PEER"
say "- NAT: the guest pinged $LAN_PEER on the LAN and got an answer. The LAN has no route to"
say "  192.168.122.0/24: the answer found its way back because kvnet masqueraded the guest as $LAN_HOST"
marker done >/dev/null
if ip netns exec "$H" ping -n -q -c 1 -W 2 "$ip4" >/dev/null; then
  say "- The host reaches the guest at $ip4 ..."
else
  say "- (the host could not ping the guest at $ip4)"
fi
ip -n "$L" route add 192.168.122.0/24 via "$LAN_HOST"
if ip netns exec "$L" ping -n -q -c 1 -W 2 "$ip4" >/dev/null; then
  fail "the LAN reached the guest at $ip4: NAT should keep it out"
fi
say "  ... but the LAN does not, even with a route to 192.168.122.0/24: kvnet's firewall keeps NATed guests private"

step "6. kvnet net-dhcp-leases default"
kvnet net-dhcp-leases default
say ""
say "The demo worked: a real VM got its address, name service and way out from kvnet alone"
say "(no dnsmasq, no libvirtd). Guest console, kvnetd log and lab are removed now."
