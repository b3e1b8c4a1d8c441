#!/usr/bin/env bash
# What a Prometheus scrape every 100 ms costs DHCP and DNS: kvnetd with --metrics, the
# same load with and without a scraper, rounds interleaved, in one run.
#   bench/scrape.sh [--secs N] [--rounds N] [--rate R]
# kvnetd runs in a "host" namespace with one NAT network (10.76.0.0/16, a DHCP range of
# 60,000 addresses, 100 `<dns><host>` names) and `--metrics 127.0.0.1:9125`; a client
# namespace on the bridge runs, each round:
#   perfdhcp -4 -l vc0 -r RATE -R 50000 -p SECS   (DORA exchanges/s achieved, avg delay)
#   dnsperf -s 10.76.0.1 -l SECS -c 4 -q 100       (queries/s, as many as answered)
# once with nothing scraping and once with a scraper in the host namespace fetching
# /metrics every 100 ms (the 600 leases of a round in it, and growing). Medians of the
# rounds; each round starts the network afresh (no lease).
# Root only; only the namespaces it creates are touched, removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
SECS=10 ROUNDS=5 RATE=1000
while [ $# -gt 0 ]; do
  case "$1" in
    --secs) SECS=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --rate) RATE=$2; shift 2 ;;
    *) echo "usage: $0 [--secs N] [--rounds N] [--rate R]" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "bench needs root (network namespaces)" >&2; exit 1; }
ensure_perfdhcp
command -v dnsperf >/dev/null ||
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q dnsperf >/dev/null
cargo build --release --locked -q --bin kvnetd --bin kvnet
T=$(realpath -m "${CARGO_TARGET_DIR:-target}")
KVNET=$T/release/kvnet
H=kvsch-$$ C=kvscc-$$
DIR=$(mktemp -d /tmp/kvsc.XXXXXX)
RUN=$(mktemp -d /dev/shm/kvsc.XXXXXX)
DPID= SPID=
cleanup() {
  [ -n "$SPID" ] && kill "$SPID" 2>/dev/null
  [ -n "$DPID" ] && kill "$DPID" 2>/dev/null && wait "$DPID" 2>/dev/null
  drop_netns "$C" "$H"
  rm -rf "$DIR" "$RUN"
}
trap cleanup EXIT INT TERM
for ns in "$H" "$C"; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
ip netns exec "$H" "$T"/release/kvnetd --config-dir "$DIR/etc" --state-dir "$DIR/lib" \
  --run-dir "$RUN" --log warn --metrics 127.0.0.1:9125 2>"$DIR/kvnetd.log" &
DPID=$!
export KVNET_SOCKET=$RUN/kvnetd.sock
for _ in $(seq 200); do "$KVNET" net-list >/dev/null 2>&1 && break; sleep 0.05; done
"$KVNET" net-destroy default >/dev/null
{
  echo "<network><name>sc</name><forward mode='nat'/><bridge name='kvsc0'/>"
  echo "<domain name='bench.test' localOnly='yes'/><dns>"
  for i in $(seq 0 99); do echo "<host ip='10.76.9.$i'><hostname>h$i</hostname></host>"; done
  echo "</dns><ip address='10.76.0.1' prefix='16'><dhcp><range start='10.76.10.0' end='10.76.250.0'/></dhcp></ip></network>"
} >"$DIR/sc.xml"
"$KVNET" net-define "$DIR/sc.xml" >/dev/null
for i in $(seq 0 99); do echo "h$i.bench.test A"; done >"$DIR/names"
ip -n "$H" link add vh0 type veth peer name vc0 netns "$C"
ip -n "$C" addr add 10.76.0.200/16 dev vc0
ip -n "$C" link set vc0 up

cat >"$DIR/scrape.py" <<'PY'
import socket, time
n = 0
while True:
    t = time.monotonic()
    s = socket.create_connection(("127.0.0.1", 9125), timeout=5)
    s.sendall(b"GET /metrics HTTP/1.1\r\n\r\n")
    while s.recv(1 << 16): pass
    s.close(); n += 1
    time.sleep(max(0, 0.1 - (time.monotonic() - t)))
PY

fresh() {
  "$KVNET" net-destroy sc >/dev/null 2>&1 || true
  rm -f "$DIR"/lib/leases/sc.jsonl
  "$KVNET" net-start sc >/dev/null
  ip -n "$H" link set vh0 master kvsc0 up
  sleep 1
}
dhcp() { # prints "exchanges/s avg-delay-ms"
  ip netns exec "$C" timeout -k 2 $((SECS + 30)) "$PERFDHCP" -4 -l vc0 -r "$RATE" -R 50000 \
    -p "$SECS" 2>&1 | awk -v secs="$SECS" '
      /Statistics for: REQUEST-ACK/ { s = 1 } /^received packets:/ && s { r = $3 }
      /^avg delay:/ && s { d = $3 } END { printf "%.0f %.3f\n", r / secs, d }'
}
dns() { # queries/s
  ip netns exec "$C" dnsperf -s 10.76.0.1 -d "$DIR/names" -l "$SECS" -c 4 -q 100 2>&1 |
    awk '/Queries per second:/ { printf "%.0f\n", $4 }'
}
scraper() { ip netns exec "$H" python3 "$DIR/scrape.py" & SPID=$!; }
stop_scraper() { kill "$SPID" 2>/dev/null; wait "$SPID" 2>/dev/null || true; SPID=; }

echo "kvnet $(git rev-parse --short HEAD)$(git diff --quiet || echo -dirty), $(date -u +%F), $(nproc) cores, kernel $(uname -r)"
echo
: >"$DIR/d0"; : >"$DIR/d1"; : >"$DIR/q0"; : >"$DIR/q1"; : >"$DIR/l0"; : >"$DIR/l1"
for r in $(seq "$ROUNDS"); do
  for s in 0 1; do
    fresh
    [ "$s" = 1 ] && scraper
    read -r ex lat < <(dhcp)
    q=$(dns)
    [ "$s" = 1 ] && stop_scraper
    echo "$ex" >>"$DIR/d$s"; echo "$lat" >>"$DIR/l$s"; echo "$q" >>"$DIR/q$s"
    echo "round $r scrape=$s: $ex DORA/s, $lat ms, $q q/s" >&2
  done
done
ip netns exec "$H" python3 -c '
import socket; s = socket.create_connection(("127.0.0.1", 9125)); s.sendall(b"GET /metrics HTTP/1.1\r\n\r\n")
b = b""
while True:
    c = s.recv(1 << 16)
    if not c: break
    b += c
print(len(b))' >"$DIR/size"
fmed() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
pct() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%+.1f %%", 100 * (a - b) / b}'; }
d0=$(fmed <"$DIR/d0") d1=$(fmed <"$DIR/d1") q0=$(fmed <"$DIR/q0") q1=$(fmed <"$DIR/q1")
l0=$(fmed <"$DIR/l0") l1=$(fmed <"$DIR/l1")
echo "| load (median of $ROUNDS rounds) | no scraper | a scrape every 100 ms | change |"
echo "| --- | --- | --- | --- |"
echo "| DHCP at $RATE/s asked: DORA exchanges/s | $d0 | $d1 | $(pct "$d1" "$d0") |"
echo "| DHCP: average REQUEST-ACK delay | $l0 ms | $l1 ms | $(pct "$l1" "$l0") |"
echo "| DNS, local names: queries/s | $q0 | $q1 | $(pct "$q1" "$q0") |"
echo
echo "scrape size at the end: $(cat "$DIR/size") bytes"
echo "rounds: DORA/s $(tr '\n' ' ' <"$DIR/d0")/ $(tr '\n' ' ' <"$DIR/d1"); q/s $(tr '\n' ' ' <"$DIR/q0")/ $(tr '\n' ' ' <"$DIR/q1")"
echo "kvnetd log (warn and up): $(grep -c . "$DIR/kvnetd.log" || true) lines"
