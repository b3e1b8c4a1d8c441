#!/usr/bin/env bash
# System packages kvnet needs: `deps.sh run` for the daemon, `deps.sh test` for the tests.
# `test` also fetches a guest kernel for the QEMU guest tests, without installing it:
# the current linux-image-*-cloud-amd64 .deb is extracted under $KVNET_TEST_CACHE
# (default /var/cache/kvnet-test)/kernel, with stable links kernel/vmlinuz and
# kernel/modules (the kernel's /lib/modules/VERSION). The host's /boot is not touched.
set -euo pipefail
run_pkgs=(nftables iproute2 procps libcap2-bin)
# busybox-static (not busybox, they conflict) gives the DHCP tests `busybox udhcpc` and
# the QEMU guests their whole userland (and the TFTP tests `busybox tftp`); cpio and gzip build the guests' initramfs;
# isc-dhcp-client and dhcpcd-base are the other real DHCP clients the tests run; ndisc6
# gives the router advertisement tests rdisc6, which solicits and prints an RA's fields.
# iptables (Docker's rules, iptables-nft), ufw and firewalld (run on a private D-Bus by
# dbus-daemon) are the foreign firewalls the tests run in namespaces. ufw's postinst
# leaves it disabled; firewalld's starts and enables it where systemd runs, which would
# firewall the host: a policy-rc.d forbids the start during the install, and it is
# disabled afterwards. systemd gives systemd-analyze, which checks kvnetd's units.
# ipxe-qemu (a dependency of qemu-system-x86, named for clarity) has the NIC option ROMs
# the PXE guest boots through. dpkg-dev (dpkg-shlibdeps) and binutils (strip) build the
# Debian package (scripts/package.sh), lintian judges it. iperf3 measures shaped ports
# (the QoS tests and bench/qos.sh). frr (zebra, bgpd, vtysh) runs the EVPN doctor test's
# two hosts in namespaces; its service is disabled like firewalld's.
test_pkgs=(iputils-ping python3 busybox-static dnsutils qemu-system-x86 ipxe-qemu cpio gzip
  isc-dhcp-client dhcpcd-base ndisc6 iptables ufw firewalld dbus-daemon systemd
  dpkg-dev binutils lintian iperf3 frr)
mode="${1:-run}"
want=("${run_pkgs[@]}")
[ "$mode" = test ] && want+=("${test_pkgs[@]}")
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
updated=
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "deps.sh: missing packages ${missing[*]}; run as root to install them" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  # qemu-system-x86 pulls in libibverbs1, whose postinst adds group rdma; dhcpcd-base's
  # adds user dhcpcd; firewalld's dependency polkitd adds user and group polkitd, and
  # dbus-daemon's user messagebus (see sysaccount.sh).
  if [ "$mode" = test ]; then
    . "$(dirname "$0")/sysaccount.sh"
    ensure_group rdma
    ensure_user dhcpcd nogroup /usr/lib/dhcpcd "DHCP Client Daemon"
    ensure_group polkitd
    ensure_user polkitd polkitd /nonexistent "polkit"
    ensure_group messagebus
    ensure_user messagebus messagebus /nonexistent ""
    # frr's postinst adds groups frrvty and frr and user frr.
    ensure_group frrvty
    ensure_group frr
    ensure_user frr frr /nonexistent "Frr routing suite"
  fi
  apt-get update -qq
  updated=1
  # busybox-static replaces busybox: apt removes the latter without asking.
  log="$(mktemp)"
  guard=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    guard=1
  fi
  status=0
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$log" 2>&1 || status=$?
  [ -n "$guard" ] && rm -f /usr/sbin/policy-rc.d
  if [ "$status" != 0 ]; then
    cat "$log" >&2
    rm -f "$log"
    exit 1
  fi
  rm -f "$log"
  if [ -d /run/systemd/system ] && [ "$mode" = test ]; then
    systemctl disable firewalld ufw frr >/dev/null 2>&1 || true
  fi
fi

if [ "$mode" = test ]; then
  cache="${KVNET_TEST_CACHE:-/var/cache/kvnet-test}"
  kdir="$cache/kernel"
  # The versioned package the meta package points at, e.g. linux-image-6.1.0-56-cloud-amd64.
  resolve() {
    apt-cache depends linux-image-cloud-amd64 2>/dev/null |
      sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-cloud-amd64\)$/\1/p' | head -n1
  }
  pkg="$(resolve)"
  if [ -z "$pkg" ] && [ -z "$updated" ] && [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    pkg="$(resolve)"
  fi
  if [ -z "$pkg" ]; then
    # No package lists (not root): keep a kernel fetched earlier, if any.
    [ -e "$kdir/vmlinuz" ] || {
      echo "deps.sh: cannot resolve linux-image-cloud-amd64 (run as root)" >&2
      exit 1
    }
  elif [ ! -e "$kdir/$pkg/.done" ]; then
    if [ "$(id -u)" != 0 ]; then
      echo "deps.sh: guest kernel $pkg missing under $kdir; run as root to fetch it" >&2
      exit 1
    fi
    mkdir -p "$kdir/dl"
    rm -rf "${kdir:?}/$pkg" "$kdir/dl/"*.deb
    # apt downloads as the unprivileged _apt user: let it write there.
    chown _apt "$kdir/dl" 2>/dev/null || true
    (cd "$kdir/dl" && apt-get download -qq "$pkg" >/dev/null 2>&1) || {
      echo "deps.sh: apt-get download $pkg failed" >&2
      exit 1
    }
    dpkg-deb -x "$kdir/dl/${pkg}"_*.deb "$kdir/$pkg"
    rm -f "$kdir/dl/"*.deb
    touch "$kdir/$pkg/.done"
    # Kernels fetched before this one are of no more use.
    for d in "$kdir"/linux-image-*; do
      [ "$d" = "$kdir/$pkg" ] || rm -rf "$d"
    done
  fi
  if [ -n "$pkg" ]; then
    vmlinuz="$(ls "$kdir/$pkg"/boot/vmlinuz-* | head -n1)"
    modules="$(ls -d "$kdir/$pkg"/lib/modules/* | head -n1)"
    ln -sfn "${vmlinuz#"$kdir"/}" "$kdir/vmlinuz"
    ln -sfn "${modules#"$kdir"/}" "$kdir/modules"
  fi
fi
command -v cargo >/dev/null || { echo "deps.sh: cargo not found (install Rust with rustup)" >&2; exit 1; }

if [ "$mode" = test ]; then
  # promtool (Debian's prometheus package) checks the metrics kvnetd serves. Only the
  # binary is extracted, to $KVNET_TEST_CACHE/promtool: installing the package would
  # start a Prometheus server on the machine.
  cache="${KVNET_TEST_CACHE:-/var/cache/kvnet-test}"
  pdir="$cache/prometheus"
  if [ ! -x "$cache/promtool" ]; then
    if [ "$(id -u)" != 0 ]; then
      echo "deps.sh: promtool missing under $cache; run as root to fetch it" >&2
      exit 1
    fi
    mkdir -p "$pdir/dl"
    chown _apt "$pdir/dl" 2>/dev/null || true
    (cd "$pdir/dl" && apt-get download -qq prometheus >/dev/null 2>&1) || {
      echo "deps.sh: apt-get download prometheus failed" >&2
      exit 1
    }
    dpkg-deb -x "$pdir/dl/"prometheus_*.deb "$pdir/x"
    install -m 0755 "$pdir/x/usr/bin/promtool" "$cache/promtool"
    rm -rf "$pdir"
  fi
fi
