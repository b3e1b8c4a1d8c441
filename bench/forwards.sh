#!/usr/bin/env bash
# Port forwards: what one costs a packet with 1 and with 10,000 in the table, and how
# long `kvnet net-forward-add` / `net-forward-remove` take (CLI process included) as the
# network's forwards grow (9,999 + the one added = 10,000, the most a network may have).
#   bench/forwards.sh [--reps N] [--conns N] [--counts "1 1000 9999"]
# kvnetd runs in a "host" namespace with an uplink to a "lan" namespace
# (203.0.113.1 / .2) and one NAT network (10.88.0.0/24) whose guest namespace
# (10.88.0.10) runs a TCP server on port 8000. The network is defined with COUNT
# forwards (tcp 20000+i on every host address -> 10.88.0.(10+i%200):8000) and started;
# then, per count:
#   add/remove: REPS times `net-forward-add fwd --proto tcp --port 9000 --to 10.88.0.10:8000`
#     then `net-forward-remove fwd --proto tcp --port 9000`, each timed alone, 100 ms apart;
#   packets: from the lan, CONNS TCP connections one after the other to 203.0.113.1:20000
#     (the first forward, to the guest; a NAT chain sees each connection's first packet,
#     the forward chain every packet), and a 5 s bulk TCP transfer through it
#     (connections/s, MB/s). The per-packet path is one hash lookup whatever the count.
# Root only; only the namespaces it creates are touched, removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
REPS=30 CONNS=2000 COUNTS="1 1000 9999"
while [ $# -gt 0 ]; do
  case "$1" in
    --reps) REPS=$2; shift 2 ;;
    --conns) CONNS=$2; shift 2 ;;
    --counts) COUNTS=$2; shift 2 ;;
    *) echo "usage: $0 [--reps N] [--conns N] [--counts \"1 1000 10000\"]" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "bench needs root (network namespaces)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "needs python3" >&2; exit 1; }
cargo build --release --locked -q --bin kvnetd --bin kvnet
T=$(realpath -m "${CARGO_TARGET_DIR:-target}")
KVNET=$T/release/kvnet
H=kvfwh-$$ L=kvfwl-$$ G=kvfwg-$$
DIR=$(mktemp -d /tmp/kvfwd.XXXXXX)
RUN=$(mktemp -d /dev/shm/kvfwd.XXXXXX)
DPID= SPID=
cleanup() {
  [ -n "$SPID" ] && kill "$SPID" 2>/dev/null
  [ -n "$DPID" ] && kill "$DPID" 2>/dev/null && wait "$DPID" 2>/dev/null
  drop_netns "$G" "$L" "$H"
  rm -rf "$DIR" "$RUN"
}
trap cleanup EXIT INT TERM
for ns in "$H" "$L" "$G"; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
ip -n "$H" link add wan0 type veth peer name lan0 netns "$L"
ip -n "$H" addr add 203.0.113.1/24 dev wan0
ip -n "$H" link set wan0 up
ip -n "$L" addr add 203.0.113.2/24 dev lan0
ip -n "$L" link set lan0 up
ip netns exec "$H" "$T"/release/kvnetd --config-dir "$DIR/etc" --state-dir "$DIR/lib" \
  --run-dir "$RUN" --log warn 2>"$DIR/kvnetd.log" &
DPID=$!
export KVNET_SOCKET=$RUN/kvnetd.sock
for _ in $(seq 200); do "$KVNET" net-list >/dev/null 2>&1 && break; sleep 0.05; done
"$KVNET" net-destroy default >/dev/null

# The guest's server: accepts, answers one byte per connection, or sinks a bulk stream.
cat >"$DIR/srv.py" <<'PY'
import socket, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 8000)); s.listen(512)
def sink(c):
    while c.recv(1 << 20): pass
    c.close()
while True:
    c, _ = s.accept()
    first = c.recv(1)
    if first == b"b": threading.Thread(target=sink, args=(c,), daemon=True).start()
    else: c.send(b"k"); c.close()
PY
cat >"$DIR/cli.py" <<'PY'
import socket, sys, time
addr, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
t0 = time.perf_counter()
for _ in range(n):
    c = socket.create_connection((addr, port), timeout=5); c.send(b"c"); c.recv(1); c.close()
conns = n / (time.perf_counter() - t0)
c = socket.create_connection((addr, port), timeout=5); c.send(b"b")
buf = b"\0" * (1 << 16); sent = 0; t0 = time.perf_counter()
while time.perf_counter() - t0 < 5: sent += c.send(buf)
c.close()
print(f"{conns:.0f} {sent / (time.perf_counter() - t0) / 1e6:.0f}")
PY

net_with() { # count: the network's XML with COUNT forwards
  echo "<network><name>fwd</name><forward mode='nat'/><bridge name='kvfw0'/>"
  echo "<metadata><kvnet:network xmlns:kvnet='http://kvnet.org/xmlns/network/1.0'>"
  awk -v n="$1" 'BEGIN { for (i = 0; i < n; i++)
    printf "<kvnet:forward proto=\"tcp\" port=\"%d\" to=\"10.88.0.%d\" toPort=\"8000\"/>\n", 20000 + i, 10 + i % 200 }'
  echo "</kvnet:network></metadata>"
  echo "<ip address='10.88.0.1' prefix='24'/></network>"
}

echo "kvnet $(git rev-parse --short HEAD)$(git diff --quiet || echo -dirty), $(date -u +%F), $(nproc) cores, kernel $(uname -r)"
echo
echo "| forwards in the network | net-forward-add (median) | min – max | net-forward-remove (median) | min – max | connections/s through a forward | bulk TCP through it |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
for count in $COUNTS; do
  [ -n "$SPID" ] && kill "$SPID" 2>/dev/null && SPID=
  "$KVNET" net-destroy fwd >/dev/null 2>&1 || true
  "$KVNET" net-undefine fwd >/dev/null 2>&1 || true
  net_with "$count" >"$DIR/fwd.xml"
  "$KVNET" net-define "$DIR/fwd.xml" >/dev/null
  "$KVNET" net-start fwd >/dev/null
  # The guest, on the network's bridge.
  ip -n "$G" link del eth0 2>/dev/null || true
  ip -n "$H" link add vfw0 type veth peer name eth0 netns "$G"
  ip -n "$H" link set vfw0 master kvfw0 up
  ip -n "$G" addr add 10.88.0.10/24 dev eth0
  ip -n "$G" link set eth0 up
  ip -n "$G" route add default via 10.88.0.1
  ip netns exec "$G" python3 "$DIR/srv.py" &
  SPID=$!
  sleep 0.3
  : >"$DIR/add" ; : >"$DIR/rm"
  # 100 ms apart, as commands come: a removal's elements are deleted by the kernel a
  # grace period (15-30 ms) after the verb returns, and an add right behind waits for it.
  for _ in $(seq "$REPS"); do
    us "$KVNET" net-forward-add fwd --proto tcp --port 9000 --to 10.88.0.10:8000 >>"$DIR/add"
    sleep 0.1
    us "$KVNET" net-forward-remove fwd --proto tcp --port 9000 >>"$DIR/rm"
    sleep 0.1
  done
  # A refused add would be timed too: check that one works.
  "$KVNET" net-forward-add fwd --proto tcp --port 9000 --to 10.88.0.10:8000 >/dev/null
  "$KVNET" net-forward-remove fwd --proto tcp --port 9000 >/dev/null
  elems=$(ip netns exec "$H" nft list map inet kvnet fwd4_any | grep -o ' : 10\.88' | wc -l)
  [ "$elems" = "$count" ] || { echo "fwd4_any holds $elems elements, expected $count" >&2; exit 1; }
  if [ "$count" -ge 1 ]; then
    read -r conns mbs < <(ip netns exec "$L" python3 "$DIR/cli.py" 203.0.113.1 20000 "$CONNS")
  else
    conns=- mbs=-
  fi
  printf '| %s | %s | %s µs | %s | %s µs | %s | %s MB/s |\n' "$count" \
    "$(ms "$(median <"$DIR/add")")" "$(minmax <"$DIR/add")" \
    "$(ms "$(median <"$DIR/rm")")" "$(minmax <"$DIR/rm")" "$conns" "$mbs"
done
echo
echo "kvnetd log (warn and up): $(grep -c . "$DIR/kvnetd.log" || true) lines"
