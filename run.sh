#!/usr/bin/env bash
# Quick start: install what kvnet needs, build it, and run kvnetd in the foreground with
# the built-in `default` NAT network (virbr0, 192.168.122.0/24, unless that is taken).
# Extra arguments go to kvnetd, e.g. ./run.sh --config-dir /tmp/kv/etc --run-dir /tmp/kv/run
set -euo pipefail
cd "$(dirname "$0")"
if [ "$(id -u)" != 0 ]; then
  echo "run.sh: kvnetd manages bridges and nftables: run it as root" >&2
  exit 1
fi
./scripts/deps.sh run
T=$(realpath -m "${CARGO_TARGET_DIR:-target}")
cargo build --release --locked --bin kvnetd --bin kvnet --bin kvnet-ifup --bin kvnet-ifdown \
  --bin kvnet-bridge-helper
# The NSS module (guest names on the host): enabled by `kvnet` on the hosts: line of
# /etc/nsswitch.conf, which run.sh leaves to the admin (see README).
cargo build --release --locked -p kvnet-nss --lib
install -m 0644 "$T"/release/libnss_kvnet.so /usr/local/lib/libnss_kvnet.so.2
ldconfig
install -m 0755 "$T"/release/kvnet "$T"/release/kvnet-ifup "$T"/release/kvnet-ifdown /usr/local/bin/
# The bridge helper gets CAP_NET_ADMIN as a file capability, never setuid; with no
# /etc/kvnet/bridge.conf it denies every bridge.
install -D -m 0755 "$T"/release/kvnet-bridge-helper /usr/local/libexec/kvnet-bridge-helper
setcap cap_net_admin+ep /usr/local/libexec/kvnet-bridge-helper
# The helper opens /dev/net/tun as the user running qemu; udev makes it 0666 on Debian.
[ "$(stat -c %a /dev/net/tun 2>/dev/null)" = 666 ] ||
  echo "run.sh: note: /dev/net/tun is not mode 0666 (no udev?): users' qemu cannot get a TAP from the bridge helper" >&2
echo "installed: /usr/local/bin/{kvnet,kvnet-ifup,kvnet-ifdown}, /usr/local/libexec/kvnet-bridge-helper, /usr/local/lib/libnss_kvnet.so.2"
echo "starting kvnetd (Ctrl-C stops the daemon, networks stay up)"
exec "$T"/release/kvnetd "$@"
