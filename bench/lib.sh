# Shared by the bench scripts: kvnet and its peer are measured with the same network XML,
# the same timer and the same statistics, and the DHCP benches install and clean up alike.
net_xml() { # name bridge third-octet second-octet
  cat <<XML
<network><name>$1</name><forward mode='nat'/><bridge name='$2'/>
<ip address='10.$4.$3.1' netmask='255.255.255.0'><dhcp><range start='10.$4.$3.2' end='10.$4.$3.254'/></dhcp></ip></network>
XML
}
# microseconds a command takes, CLI process start to exit
us() { local t0=$EPOCHREALTIME; "$@" >/dev/null 2>&1; local t1=$EPOCHREALTIME; echo $(( (${t1/./} - ${t0/./}) )); }
median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print int((a[NR/2]+a[NR/2+1])/2)}'; }
minmax() { sort -n | awk 'NR==1{mn=$1} {mx=$1} END {print mn " – " mx}'; }
ms() { awk -v u="$1" 'BEGIN {printf "%.2f ms", u/1000}'; }
report() { # label samples-file
  local med mm; med=$(median <"$2"); mm=$(minmax <"$2")
  printf '| %s | %s | %s µs | %s |\n' "$1" "$(ms "$med")" "$mm" "$(wc -l <"$2")"
}
# perfdhcp (Debian's kea-admin); kea-common's postinst adds group and user _kea (see
# scripts/sysaccount.sh). Sets PERFDHCP.
ensure_perfdhcp() {
  if ! command -v perfdhcp >/dev/null && [ ! -x /usr/sbin/perfdhcp ]; then
    . scripts/sysaccount.sh
    ensure_group _kea
    ensure_user _kea _kea /var/lib/kea "Kea DHCP User"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends kea-admin >/dev/null
  fi
  PERFDHCP=$(command -v perfdhcp || echo /usr/sbin/perfdhcp)
}
# Delete network namespaces, killing anything still running in them first.
drop_netns() {
  local ns pid
  for ns in "$@"; do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null; done
    ip netns del "$ns" 2>/dev/null
  done
  return 0
}
