#!/bin/sh
# udhcpc's event script in the kvnet test guest: configure eth0 from the lease, write
# /etc/resolv.conf and print the lease marker (see init).
case "$1" in
  deconfig)
    ip -4 addr flush dev "$interface"
    ip link set "$interface" up
    ;;
  bound | renew)
    ip -4 addr flush dev "$interface"
    ip addr add "$ip/$mask" dev "$interface"
    for r in $router; do
      ip route add default via "$r" dev "$interface"
      break
    done
    : >/etc/resolv.conf
    [ -n "$domain" ] && echo "search $domain" >>/etc/resolv.conf
    for d in $dns; do echo "nameserver $d" >>/etc/resolv.conf; done
    echo "KVNET lease ip=$ip mask=$mask router=$(echo $router | tr ' ' ,)" \
      "dns=$(echo $dns | tr ' ' ,) domain=$domain uptime=$(cut -d' ' -f1 /proc/uptime)" >/dev/console
    ;;
esac
exit 0
