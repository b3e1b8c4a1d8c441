#!/usr/bin/env bash
# Builds the initramfs of the kvnet test guest (tests and scripts/demo.sh use it) and
# prints its path. Contents: busybox-static, the virtio-net modules of the guest kernel
# and ./init (a DHCP client that reports lease, DNS answers and pings on the serial
# console, then powers off; see init). Cached by content hash, so reruns are free.
# Env: KVNET_TEST_CACHE   cache dir (default /var/cache/kvnet-test; deps.sh test fills it)
#      KVNET_GUEST_MODULES the guest kernel's /lib/modules/VERSION
#                          (default $KVNET_TEST_CACHE/kernel/modules)
#      KVNET_BUSYBOX      a static busybox (default /bin/busybox from busybox-static)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache="${KVNET_TEST_CACHE:-/var/cache/kvnet-test}"
mods="${KVNET_GUEST_MODULES:-$cache/kernel/modules}"
busybox="${KVNET_BUSYBOX:-/bin/busybox}"
names=(virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci
  failover net_failover virtio_net)

die() { echo "build-initramfs.sh: $*" >&2; exit 1; }
[ -x "$busybox" ] || die "$busybox missing (scripts/deps.sh test installs busybox-static)"
[ -d "$mods/" ] || die "$mods missing (scripts/deps.sh test fetches the guest kernel)"
files=()
for m in "${names[@]}"; do
  f="$(find "$mods/" -name "$m.ko" -o -name "$m.ko.*" | head -n1)"
  # Missing means built into the kernel; init skips it.
  [ -n "$f" ] && files+=("$f")
done
hash="$(cat "$0" "$here/init" "$here/udhcpc.sh" "$busybox" "${files[@]}" | sha256sum | cut -c1-16)"
out="$cache/initramfs/initramfs-$hash.cpio.gz"
if [ ! -s "$out" ]; then
  mkdir -p "$cache/initramfs"
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  root="$tmp/root"
  mkdir -p "$root"/{bin,dev,etc,lib/modules,proc,sys,tmp,root}
  cp "$busybox" "$root/bin/busybox"
  install -m 0755 "$here/init" "$root/init"
  install -m 0755 "$here/udhcpc.sh" "$root/etc/udhcpc.sh"
  for f in "${files[@]}"; do
    b="$(basename "$f")"
    case "$b" in
      *.ko) cp "$f" "$root/lib/modules/$b" ;;
      *.ko.xz) xz -dc "$f" >"$root/lib/modules/${b%.xz}" ;;
      *.ko.zst) zstd -qdc "$f" >"$root/lib/modules/${b%.zst}" ;;
      *.ko.gz) gzip -dc "$f" >"$root/lib/modules/${b%.gz}" ;;
      *) die "unknown module compression: $f" ;;
    esac
  done
  (cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet | gzip -9n) >"$tmp/out"
  mv "$tmp/out" "$out.tmp.$$"
  mv "$out.tmp.$$" "$out"
fi
echo "$out"
