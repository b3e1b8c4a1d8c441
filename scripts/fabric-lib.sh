# Shared by scripts/fabric-demo.sh and bench/fabric-scale.sh: hosts of an EVPN fabric in
# network namespaces of this machine. Each host has a veth to the underlay namespace's
# bridge (172.31.254.N), its VTEP 10.255.0.N on lo routed to the others, its own "LAN"
# namespace behind its NAT (203.0.113.0/24), its own kvnetd and FRR (zebra, bgpd; every
# path under $DIR/hN, configured by `kvnet fabric-config`).
# Needs: T (the directory of kvnetd and kvnet), DIR (a scratch directory), P (a name
# prefix), NSS (an array the namespaces are added to, for fabric_cleanup).

in_ns() { ip netns exec "$@"; }
kv() { local h=$1; shift; KVNET_SOCKET=$DIR/h$h/run/kvnetd.sock "$T/kvnet" "$@"; }
vtysh_h() { local h=$1; shift; in_ns "$P-h$h" vtysh --vty_socket "$DIR/h$h/frr" "$@"; }

# The fabric file for hosts 1..$1 (a full mesh).
fabric_toml() {
  echo "asn = 65000"
  for h in $(seq "$1"); do printf '[[host]]\nname = "h%s"\nvtep = "10.255.0.%s"\n' "$h" "$h"; done
}

fabric_underlay() {
  ip netns add "$P-u"; NSS+=("$P-u"); in_ns "$P-u" ip link set lo up
  in_ns "$P-u" ip link add ul type bridge; in_ns "$P-u" ip link set ul up
}

start_kvnetd() { # host
  local h=$1
  in_ns "$P-h$h" "$T/kvnetd" --config-dir "$DIR/h$h/etc" --state-dir "$DIR/h$h/lib" \
    --run-dir "$DIR/h$h/run" --log warn 2>>"$DIR/h$h/kvnetd.log" &
  for _ in $(seq 500); do kv "$h" net-list >/dev/null 2>&1 && return 0; sleep 0.01; done
  echo "kvnetd on h$h did not come up"; cat "$DIR/h$h/kvnetd.log"; return 1
}

# Host $1 of $2: namespaces, underlay, LAN, kvnetd (its default network destroyed).
fabric_host() {
  local h=$1 n=$2 ns=$P-h$1
  NSS+=("$ns" "$P-l$h")
  ip netns add "$ns"; in_ns "$ns" ip link set lo up
  ip link add "$P-v$h" type veth peer name ul0 netns "$ns"
  ip link set "$P-v$h" netns "$P-u"
  in_ns "$P-u" ip link set "$P-v$h" master ul up
  in_ns "$ns" ip addr add "172.31.254.$h/24" dev ul0
  in_ns "$ns" ip link set ul0 up
  in_ns "$ns" ip addr add "10.255.0.$h/32" dev lo
  for o in $(seq "$n"); do
    [ "$o" = "$h" ] || in_ns "$ns" ip route add "10.255.0.$o/32" via "172.31.254.$o"
  done
  ip netns add "$P-l$h"; in_ns "$P-l$h" ip link set lo up
  in_ns "$ns" ip link add wan0 type veth peer name lan0 netns "$P-l$h"
  in_ns "$ns" ip addr add 203.0.113.1/24 dev wan0; in_ns "$ns" ip link set wan0 up
  in_ns "$P-l$h" ip addr add 203.0.113.2/24 dev lan0; in_ns "$P-l$h" ip link set lan0 up
  in_ns "$ns" ip route add default via 203.0.113.2
  mkdir -p "$DIR/h$h/etc" "$DIR/h$h/lib" "$DIR/h$h/run" "$DIR/h$h/frr"
  cp "$DIR/fabric.toml" "$DIR/h$h/etc/fabric.toml"
  start_kvnetd "$h" || return 1
  kv "$h" net-destroy default >/dev/null
}

# FRR on host $1, configured for it by `kvnet fabric-config`.
fabric_frr() {
  local h=$1 ns=$P-h$1 f=$DIR/h$1/frr c
  "$T/kvnet" fabric-config --fabric "$DIR/fabric.toml" --host "h$h" >"$f/frr.conf" 2>/dev/null || return 1
  : >"$f/empty.conf"; chmod 755 "$DIR" "$DIR/h$h"; chown -R frr:frr "$f"
  c="-d -P 0 --vty_socket $f -z $f/zserv.api -f $f/empty.conf"
  in_ns "$ns" /usr/lib/frr/zebra $c -i "$f/zebra.pid" --log "file:$f/zebra.log" 2>>"$f/start.log" || return 1
  in_ns "$ns" /usr/lib/frr/bgpd $c -i "$f/bgpd.pid" --log "file:$f/bgpd.log" 2>>"$f/start.log" || return 1
  in_ns "$ns" vtysh --vty_socket "$f" -f "$f/frr.conf" >/dev/null
}

# Stops every FRR and kvnetd of the lab and deletes its namespaces and $DIR.
fabric_cleanup() {
  local f d
  for f in "$DIR"/h*/frr; do
    for d in bgpd zebra; do
      [ -f "$f/$d.pid" ] && kill -9 "$(cat "$f/$d.pid")" 2>/dev/null
    done
  done
  pkill -9 -f "kvnetd --config-dir $DIR/" 2>/dev/null
  drop_netns "${NSS[@]}"
  rm -rf "$DIR"
}
