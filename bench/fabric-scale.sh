#!/usr/bin/env bash
# How an EVPN fabric's cost grows with hosts and overlay networks, to the size one
# machine allows: for each size, a lab of scripts/fabric-lib.sh (hosts in namespaces,
# each with FRR and kvnetd), M overlay networks started on every host, then FRR; it
# reports the time until every host has every other host in every network's flood list
# (type-3 routes), the EVPN routes host 1 holds, host 1's FRR memory and the median
# `net-start` of an overlay network on host 1.
#   bench/fabric-scale.sh [--hosts "2 3 4 6"] [--nets "1 10 40"]
# Each host count runs with one network; each network count with three hosts.
set -uo pipefail
cd "$(dirname "$0")/.."
HOSTS="2 3 4 6" NETS="1 10 40"
while [ $# -gt 0 ]; do
  case "$1" in
    --hosts) HOSTS=$2; shift 2 ;;
    --nets) NETS=$2; shift 2 ;;
    *) echo "usage: $0 [--hosts LIST] [--nets LIST]" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "needs root (network namespaces)" >&2; exit 1; }
command -v vtysh >/dev/null || { echo "needs frr" >&2; exit 1; }
cargo build --release --locked -q --bin kvnetd --bin kvnet || exit 1
T=$(realpath -m "${CARGO_TARGET_DIR:-target}")/release
. bench/lib.sh
. scripts/fabric-lib.sh

overlay_xml() { # i
  cat <<EOF
<network><name>ov$1</name><forward mode='nat'/><bridge name='kvov$1'/>
<ip address='10.$((80 + $1)).0.1' prefix='24'><dhcp><range start='10.$((80 + $1)).0.10' end='10.$((80 + $1)).0.249'/></dhcp></ip>
<metadata><kvnet:network xmlns:kvnet='http://kvnet.org/xmlns/network/1.0'><kvnet:overlay vni='$((100 + $1))' dev='lo'/></kvnet:network></metadata></network>
EOF
}

run() { # hosts nets
  local H=$1 M=$2 h i t0 t1 ok starts=() rss routes
  P=fs$$-$H-$M; DIR=$(mktemp -d /tmp/kvfabscale.XXXXXX); NSS=()
  fabric_toml "$H" >"$DIR/fabric.toml"
  fabric_underlay
  for h in $(seq "$H"); do fabric_host "$h" "$H" || return 1; done
  for i in $(seq "$M"); do overlay_xml "$i" >"$DIR/ov$i.xml"; done
  for h in $(seq "$H"); do
    for i in $(seq "$M"); do
      kv "$h" net-define "$DIR/ov$i.xml" >/dev/null
      if [ "$h" = 1 ]; then starts+=("$(us kv 1 net-start "ov$i")"); else kv "$h" net-start "ov$i" >/dev/null; fi
    done
  done
  t0=$EPOCHREALTIME
  for h in $(seq "$H"); do fabric_frr "$h" || return 1; done
  # Converged: every host floods every VNI to the H-1 others.
  for _ in $(seq 1200); do
    ok=0
    for h in $(seq "$H"); do
      [ "$(in_ns "$P-h$h" bridge fdb show | grep -c '^00:00:00:00:00:00 dev kvx')" = $((M * (H - 1))) ] && ok=$((ok + 1))
    done
    [ "$ok" = "$H" ] && break; sleep 0.05
  done
  t1=$EPOCHREALTIME
  routes=$(vtysh_h 1 -c 'show bgp l2vpn evpn summary json' 2>/dev/null |
    python3 -c 'import json,sys; print(sum(p.get("pfxRcd",0) for p in json.load(sys.stdin)["peers"].values()))' 2>/dev/null)
  rss=0
  for d in zebra bgpd; do
    rss=$((rss + $(awk '/VmRSS/ {print $2}' "/proc/$(cat "$DIR/h1/frr/$d.pid")/status")))
  done
  printf '| %s | %s | %s | %s | %s MB | %s |\n' "$H" "$M" \
    "$( [ "$ok" = "$H" ] && awk -v a="${t0/./}" -v b="${t1/./}" 'BEGIN {printf "%.1f s", (b-a)/1e6}' || echo "not in 60 s")" \
    "${routes:-?}" "$((rss / 1024))" "$(printf '%s\n' "${starts[@]}" | median | xargs -I{} awk -v u={} 'BEGIN {printf "%.1f ms", u/1000}')"
  fabric_cleanup
}
trap 'fabric_cleanup 2>/dev/null' EXIT INT TERM

echo "kvnet $(git describe --always --dirty 2>/dev/null), $(date -u +%F), $(nproc) cores, FRR $(dpkg-query -W -f='${Version}' frr 2>/dev/null)"
echo
echo "| hosts | overlay networks | FRR start to every flood list complete | EVPN routes received by host 1 | host 1's zebra + bgpd RSS | overlay \`net-start\` on host 1 (median) |"
echo "| --- | --- | --- | --- | --- | --- |"
for H in $HOSTS; do run "$H" 1; done
for M in $NETS; do [ "$M" = 1 ] || run 3 "$M"; done
