#!/usr/bin/env bash
# System packages kvnet needs: `deps.sh run` for the daemon, `deps.sh test` for the tests.
set -euo pipefail
run_pkgs=(nftables iproute2 procps)
test_pkgs=(iputils-ping python3 busybox dnsutils isc-dhcp-client dhcpcd-base)
want=("${run_pkgs[@]}")
[ "${1:-run}" = test ] && want+=("${test_pkgs[@]}")
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "deps.sh: missing packages ${missing[*]}; run as root to install them" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v cargo >/dev/null || { echo "deps.sh: cargo not found (install Rust with rustup)" >&2; exit 1; }
