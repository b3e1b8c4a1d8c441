# Shared by bench/lifecycle.sh and bench/peers/libvirt.sh, so that kvnet and its peer are
# measured with the same network XML, the same timer and the same statistics.
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
