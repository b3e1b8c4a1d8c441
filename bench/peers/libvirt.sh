#!/usr/bin/env bash
# Peer benchmark: libvirt's own virtual-network driver (Debian 12: monolithic libvirtd 9.0,
# dnsmasq, iptables-nft), measured the same way bench/lifecycle.sh measures kvnet: wall time
# of each whole CLI command (virsh start-up and connection included).
#   bench/peers/libvirt.sh [--reps N] [--nets N] [--no-install] [--deadline SECONDS]
# --reps: samples per figure (default 15); --nets: N for "1st vs Nth network" (default 20:
# libvirt needs ~0.5 s per start+destroy); --deadline: abort the whole run after this long
# (default 120 + 6*reps + 4*nets s). LVB_DRIVER=network uses network:///system instead of
# qemu:///system (both reach the network driver of the monolithic daemon).
# Installs libvirt-daemon libvirt-clients dnsmasq-base iptables if missing (apt).
#
# Isolation: libvirtd runs in a network namespace of its own (kvlvb-PID) and in a private
# mount namespace in which /etc/libvirt, /var/lib/libvirt, /var/cache/libvirt,
# /var/log/libvirt and /run/libvirt are bind-mounted from a scratch dir, so neither the
# machine's network (links, routes, iptables/nft, sysctls) nor any libvirt state of the host
# is touched. virsh runs in the host namespaces and talks to the daemon over a socket in the
# scratch dir. On exit (also on error or signal) every process of the namespace is killed,
# the namespace deleted and the scratch dir removed. Root only.
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "$0")/.." && pwd)
export LC_ALL=C
REPS=15 NETS=20 INSTALL=1 DEADLINE=
while [ $# -gt 0 ]; do
  case "$1" in
    --reps) REPS=$2; shift 2 ;;
    --nets) NETS=$2; shift 2 ;;
    --no-install) INSTALL=0; shift ;;
    --deadline) DEADLINE=$2; shift 2 ;;  # seconds for the whole run (default from reps/nets)
    *) echo "usage: $0 [--reps N] [--nets N] [--no-install] [--deadline SECONDS]" >&2; exit 2 ;;
  esac
done
die() { echo "libvirt.sh: $*" >&2; exit 1; }
case "$REPS$NETS" in *[!0-9]*) die "--reps and --nets take positive integers" ;; esac
[ "$REPS" -ge 1 ] && [ "$NETS" -ge 2 ] && [ "$NETS" -le 10000 ] || die "need --reps >= 1 and 2 <= --nets <= 10000"
[ "$(id -u)" = 0 ] || die "needs root (network and mount namespaces)"

# One run at a time (the mount points below are shared between runs). Lock on this file
# itself, so the lock leaves nothing behind.
exec 9<"$0"
flock -n 9 || die "another run of $0 is in progress"

# ---- 1. packages ----------------------------------------------------------------------------
# Debian 12: the network driver is part of libvirt-daemon (no libvirt-daemon-driver-network,
# no virtnetworkd); libvirt-daemon pulls libvirt-daemon-driver-qemu. --no-install-recommends
# keeps out libvirt-daemon-system (service units, host dirs) and
# libvirt-daemon-config-network (an autostarted 'default' network).
PKGS="libvirt-daemon libvirt-clients dnsmasq-base iptables"
have_all() { command -v libvirtd >/dev/null && command -v virsh >/dev/null &&
  command -v dnsmasq >/dev/null && command -v iptables >/dev/null; }
if ! have_all; then
  [ "$INSTALL" = 1 ] || die "libvirtd/virsh/dnsmasq/iptables missing and --no-install given"
  echo "libvirt.sh: installing $PKGS" >&2
  MADE_POLICY=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then  # keep any service from being started by the install
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; MADE_POLICY=1
  fi
  apt_in() { DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $PKGS >"$1" 2>&1; }
  APTLOG=$(mktemp /tmp/kvlvb-apt.XXXXXX)
  if ! apt_in "$APTLOG"; then
    echo "libvirt.sh: install failed, running apt-get update once" >&2
    apt-get update -q >>"$APTLOG" 2>&1 || true
    apt_in "$APTLOG" || { [ "$MADE_POLICY" = 1 ] && rm -f /usr/sbin/policy-rc.d
      tail -20 "$APTLOG" >&2; rm -f "$APTLOG"; die "apt-get install $PKGS failed"; }
  fi
  rm -f "$APTLOG"
  [ "$MADE_POLICY" = 1 ] && rm -f /usr/sbin/policy-rc.d
  have_all || die "packages installed but a binary is still missing"
fi
# An install must not have left a daemon running in the host namespaces.
for p in $(pgrep -x libvirtd || true); do
  [ "$(readlink /proc/"$p"/ns/net)" = "$(readlink /proc/self/ns/net)" ] &&
    die "a libvirtd (pid $p) runs in the host network namespace; not benchmarking next to it"
done

# ---- 2. namespaces, scratch state, daemon ---------------------------------------------------
NS=kvlvb-$$ DIR=
MNTS="/etc/libvirt /var/lib/libvirt /var/cache/libvirt /var/log/libvirt /run/libvirt"
MADE_DIRS=""   # mount points that did not exist on the host and were created empty
NS_MADE=0 WATCHDOG=
ns_pids() { [ "$NS_MADE" = 1 ] && ip netns pids "$NS" 2>/dev/null || true; }
cleanup() {
  local rc=$? p
  set +e; trap - EXIT; trap '' INT TERM   # finish cleaning up whatever comes
  [ -n "$WATCHDOG" ] && kill "$WATCHDOG" 2>/dev/null
  if [ "$NS_MADE" = 1 ]; then
    # libvirtd first (politely), then everything left in the namespace: dnsmasq and its
    # dhcp-script helpers, iptables children.
    [ -n "${DPID:-}" ] && kill -TERM "$DPID" 2>/dev/null
    for _ in $(seq 50); do [ -z "$(ns_pids)" ] && break; sleep 0.1
      [ -n "${DPID:-}" ] && ! kill -0 "$DPID" 2>/dev/null && break; done
    for _ in $(seq 50); do
      p=$(ns_pids); [ -z "$p" ] && break
      kill -KILL $p 2>/dev/null || true; sleep 0.1
    done
    [ -n "$(ns_pids)" ] && echo "libvirt.sh: WARNING: processes left in $NS: $(ns_pids)" >&2
    ip netns del "$NS" 2>/dev/null || echo "libvirt.sh: WARNING: could not delete netns $NS" >&2
  fi
  for d in $MADE_DIRS; do rmdir "$d" 2>/dev/null || echo "libvirt.sh: WARNING: left $d" >&2; done
  [ -n "$DIR" ] && rm -rf "$DIR"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
DIR=$(mktemp -d /tmp/kvlvb.XXXXXX)

mkdir -p "$DIR"/{etc,lib,cache,log,run,sock,home}
# The bind mounts need their mount points; the host may lack them (libvirt-daemon-system is
# not installed). Create the missing ones empty and remove them at exit.
for d in $MNTS; do
  [ -d "$d" ] || { mkdir "$d" && MADE_DIRS="$d $MADE_DIRS"; }
done
SOCK=$DIR/sock/libvirt-sock
cat >"$DIR/etc/libvirtd.conf" <<EOF
listen_tls = 0
listen_tcp = 0
unix_sock_dir = "$DIR/sock"
unix_sock_group = "root"
unix_sock_rw_perms = "0700"
unix_sock_ro_perms = "0700"
unix_sock_admin_perms = "0700"
auth_unix_ro = "none"
auth_unix_rw = "none"
log_level = 3
log_outputs = "3:stderr"
EOF
# The qemu driver is always loaded by the monolithic daemon and resolves its built-in
# libvirt-qemu user before it reads qemu.conf; only libvirt-daemon-system creates that user.
# So the daemon's mount namespace gets copies of /etc/passwd and /etc/group with the missing
# entries added (the host files are not modified).
cat >"$DIR/etc/qemu.conf" <<EOF
user = "root"
group = "root"
EOF
cp /etc/passwd "$DIR/passwd"; cp /etc/group "$DIR/group"
for g in libvirt-qemu kvm libvirt; do
  getent group "$g" >/dev/null || echo "$g:x:$(( 64000 + ${#g} )):" >>"$DIR/group"
done
getent passwd libvirt-qemu >/dev/null ||
  echo "libvirt-qemu:x:64055:$(awk -F: '$1=="libvirt-qemu" {print $3}' "$DIR/group"):Libvirt Qemu:/nonexistent:/usr/sbin/nologin" >>"$DIR/passwd"
printf 'uri_default = "qemu:///system"\n' >"$DIR/etc/libvirt.conf"
: >"$DIR/resolv.conf"   # dnsmasq gets no upstream server

ip netns add "$NS"; NS_MADE=1
ip netns exec "$NS" ip link set lo up
# ip netns exec: new net ns + its own mount ns (with /sys of the net ns); unshare: a private
# mount ns once more, with private propagation, in which the scratch dirs are mounted.
ip netns exec "$NS" unshare -m --propagation private sh -ec '
  D=$1
  mount --bind "$D/etc" /etc/libvirt
  mount --bind "$D/lib" /var/lib/libvirt
  mount --bind "$D/cache" /var/cache/libvirt
  mount --bind "$D/log" /var/log/libvirt
  mount --bind "$D/run" /run/libvirt
  mount --bind "$D/resolv.conf" /etc/resolv.conf
  mount --bind "$D/passwd" /etc/passwd
  mount --bind "$D/group" /etc/group
  export HOME=$D/home XDG_CONFIG_HOME=$D/home XDG_CACHE_HOME=$D/home XDG_RUNTIME_DIR=$D/home
  export DBUS_SYSTEM_BUS_ADDRESS=unix:path=$D/no-dbus   # no firewalld, no host dbus
  exec libvirtd --config /etc/libvirt/libvirtd.conf --pid-file "$D/run/libvirtd.pid"
' sh "$DIR" >"$DIR/libvirtd.log" 2>&1 9<&- &
DPID=$!
disown "$DPID"   # no job report when it is killed; cleanup polls it instead of waiting

# Whole-run deadline: kill the daemon (so a blocked virsh returns) and then this script.
[ -n "$DEADLINE" ] || DEADLINE=$(( 120 + REPS * 6 + NETS * 4 ))
( trap 'kill $s 2>/dev/null; exit 0' TERM   # cleanup ends the watchdog with SIGTERM
  sleep "$DEADLINE" & s=$!; wait $s
  echo "libvirt.sh: deadline of ${DEADLINE}s passed, aborting" >&2
  kill -KILL $(ip netns pids "$NS" 2>/dev/null) 2>/dev/null; kill -TERM $$ ) 9<&- &
WATCHDOG=$!
disown "$WATCHDOG"

export HOME=$DIR/home XDG_CONFIG_HOME=$DIR/home XDG_CACHE_HOME=$DIR/home
URI="${LVB_DRIVER:-qemu}:///system?socket=$SOCK"   # network:///system answers too
VIRSH=(virsh -q -c "$URI")
t0=$EPOCHREALTIME; up=0
for _ in $(seq 300); do   # 30 s
  kill -0 "$DPID" 2>/dev/null || break
  if [ -S "$SOCK" ] && timeout 10 "${VIRSH[@]}" uri >/dev/null 2>&1; then up=1; break; fi
  sleep 0.1
done
if [ "$up" != 1 ]; then
  tail -20 "$DIR/libvirtd.log" >&2
  kill -0 "$DPID" 2>/dev/null || die "libvirtd exited during start-up (log above)"
  die "libvirtd did not answer on $SOCK within 30 s (log above)"
fi
t1=$EPOCHREALTIME
DAEMON_START_US=$(( ${t1/./} - ${t0/./} ))
# virsh exits 0 here also when it reaches a different daemon by mistake: check it is ours.
v() { timeout 60 "${VIRSH[@]}" "$@"; }
[ -z "$(v net-list --all --name | grep .)" ] || die "the daemon already has networks: not ours?"

# ---- 3. measurements (same method and helpers as bench/lifecycle.sh) ------------------------
. "$BENCH_DIR/lib.sh"

net_xml bench0 lvbench0 0 250 >"$DIR/bench0.xml"
v net-define "$DIR/bench0.xml" >/dev/null
: >"$DIR/start"; : >"$DIR/destroy"
for _ in $(seq "$REPS"); do
  us "${VIRSH[@]}" net-start bench0 >>"$DIR/start"
  us "${VIRSH[@]}" net-destroy bench0 >>"$DIR/destroy"
done
: >"$DIR/floor"
for _ in $(seq "$REPS"); do us "${VIRSH[@]}" net-list --all >>"$DIR/floor"; done

# 1st vs NETS-th: the same network started with none, then with NETS-1 others running.
for i in $(seq 1 "$NETS"); do
  net_xml "n$i" "lvn$i" $((i % 250)) $((i / 250 + 1)) >"$DIR/n$i.xml"
  v net-define "$DIR/n$i.xml" >/dev/null
done
: >"$DIR/first"
for _ in $(seq "$REPS"); do
  us "${VIRSH[@]}" net-start "n$NETS" >>"$DIR/first"; v net-destroy "n$NETS" >/dev/null
done
for i in $(seq 1 $((NETS - 1))); do v net-start "n$i" >/dev/null; done
: >"$DIR/last"
for _ in $(seq "$REPS"); do
  us "${VIRSH[@]}" net-start "n$NETS" >>"$DIR/last"; v net-destroy "n$NETS" >/dev/null
done

# Memory with all NETS networks active: libvirtd plus every dnsmasq (main + dhcp-script
# helper per network), i.e. every process in the namespace except the sh/unshare wrappers.
v net-start "n$NETS" >/dev/null
active=$(v net-list --name | grep -c .)
[ "$active" = "$NETS" ] || die "expected $NETS active networks, virsh lists $active"
sleep 0.5   # let the dnsmasq children settle
rss_ld=0 rss_dm=0 ndm=0
for p in $(ip netns pids "$NS"); do
  comm=$(cat /proc/"$p"/comm 2>/dev/null) || continue
  kb=$(awk '/^VmRSS/ {print $2}' /proc/"$p"/status 2>/dev/null); kb=${kb:-0}
  case "$comm" in
    libvirtd) rss_ld=$((rss_ld + kb)) ;;
    dnsmasq) rss_dm=$((rss_dm + kb)); ndm=$((ndm + 1)) ;;
  esac
done

# ---- 4. report ------------------------------------------------------------------------------
lv=$(libvirtd --version | awk '{print $NF}')
lvdeb=$(dpkg-query -W -f='${Version}' libvirt-daemon 2>/dev/null || echo '?')
dmv=$(dnsmasq --version | awk 'NR==1 {print $3}')
iptv=$(iptables --version | awk '{print $2, $3}')
echo "libvirt $lv ($lvdeb, monolithic libvirtd, network driver + iptables), dnsmasq $dmv, iptables $iptv; $(date -u +%F), $(nproc) cores, kernel $(uname -r), REPS=$REPS, NETS=$NETS"
echo
echo "| operation (CLI round trip, wall time) | median | min – max | n |"
echo "| --- | --- | --- | --- |"
report "libvirt virsh net-list --all (client + connect floor)" "$DIR/floor"
report "libvirt net-start (NAT + DHCP)" "$DIR/start"
report "libvirt net-destroy" "$DIR/destroy"
report "libvirt net-start, 1st network (none running)" "$DIR/first"
report "libvirt net-start, ${NETS}th network ($((NETS - 1)) running)" "$DIR/last"
f=$(median <"$DIR/first"); l=$(median <"$DIR/last")
awk -v f="$f" -v l="$l" -v n="$NETS" 'BEGIN {printf "\nlibvirt %dth / 1st start: %.2fx\n", n, l/f}'
echo "libvirtd start (exec until virsh answers, n=1): $(ms "$DAEMON_START_US")"
echo "libvirt RSS with $NETS networks active: $((rss_ld + rss_dm)) kB (libvirtd $rss_ld kB + $ndm dnsmasq processes $rss_dm kB)"
