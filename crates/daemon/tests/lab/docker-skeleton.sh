# Docker 28.0.1-29.x's filter and nat rules (iptables backend) after it enabled
# forwarding, with one default bridge: /work/shared/reference/foreign-firewalls.md §2.6.
# usage: ip netns exec NS sh docker-skeleton.sh [iptables-nft|iptables-legacy]
set -e; bin="${1:-iptables-nft}"; ipt() { "$bin" -w "$@"; }
ipt -P FORWARD DROP
for c in DOCKER DOCKER-BRIDGE DOCKER-CT DOCKER-FORWARD DOCKER-INTERNAL DOCKER-USER; do ipt -N "$c"; done
ipt -A FORWARD -j DOCKER-USER; ipt -A FORWARD -j DOCKER-FORWARD
for c in DOCKER-CT DOCKER-INTERNAL DOCKER-BRIDGE; do ipt -A DOCKER-FORWARD -j "$c"; done
br=docker0 net=172.17.0.0/16
ipt -A DOCKER-CT -o $br -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
ipt -A DOCKER-BRIDGE -o $br -j DOCKER
ipt -A DOCKER ! -i $br -o $br -j DROP
ipt -A DOCKER-FORWARD -i $br -j ACCEPT
ipt -t nat -N DOCKER
ipt -t nat -A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
ipt -t nat -A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER
ipt -t nat -A POSTROUTING -s $net ! -o $br -j MASQUERADE
