#!/usr/bin/env bash
# Builds the Debian package kvnet_VERSION_ARCH.deb (amd64 here) from the workspace:
#   scripts/package.sh [--bin-dir DIR] [--version VERSION] [--out DIR]
# Without --bin-dir it builds the release binaries (cargo build --release, a no-op when
# they are current) and packs $CARGO_TARGET_DIR/release; with it, it packs the binaries
# in DIR as they are (the tests pack their debug build). VERSION defaults to the
# workspace's; the .deb goes to --out (default $CARGO_TARGET_DIR/debian) and its path
# is printed. DPKG_DEB_COMPRESSOR_TYPE/_LEVEL choose the compression (default xz).
#
# Packed with dpkg-deb, not cargo-deb: the maintainer scripts and the layout are
# written out in contrib/debian/ either way (cargo-deb writes no setcap or restart
# logic of its own), and dpkg-deb is part of every Debian system, while cargo-deb
# would be one more tool to compile (minutes on CI's 2 cores) and keep up to date.
# What cargo-deb would add, dpkg-shlibdeps's Depends and md5sums, is done here.
# Needs dpkg-dev (dpkg-shlibdeps) and binutils (strip): scripts/deps.sh test.
set -euo pipefail
cd "$(dirname "$0")/.."
usage() {
  echo "usage: scripts/package.sh [--bin-dir DIR] [--version VERSION] [--out DIR]" >&2
  exit 2
}
bin_dir= version= out=
while [ $# -gt 0 ]; do
  case "$1" in
    --bin-dir) bin_dir=${2:?}; shift 2 ;;
    --version) version=${2:?}; shift 2 ;;
    --out) out=${2:?}; shift 2 ;;
    *) usage ;;
  esac
done
for tool in dpkg-deb dpkg-shlibdeps strip gzip; do
  command -v "$tool" >/dev/null ||
    { echo "package.sh: $tool missing: apt-get install dpkg-dev binutils" >&2; exit 1; }
done
T=$(realpath -m "${CARGO_TARGET_DIR:-target}")
bins=(kvnetd kvnet kvnet-ifup kvnet-ifdown kvnet-bridge-helper)
if [ -z "$bin_dir" ]; then
  cargo build --release --locked $(printf -- '--bin %s ' "${bins[@]}") -p kvnet-nss --lib
  bin_dir=$T/release
fi
# The NSS module (hosts: files kvnet dns) goes where glibc looks for libnss_*.so.2.
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
[ -n "$version" ] || version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)
out=$(realpath -m "${out:-$T/debian}")
arch=$(dpkg --print-architecture)
# Reproducible: dates in the changelog and the archive from the last commit.
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
export SOURCE_DATE_EPOCH

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
# debian/kvnet is where dpkg-shlibdeps expects a package's files.
R=$stage/debian/kvnet
D=contrib/debian
install -d -m 0755 "$R"/usr/sbin "$R"/usr/bin "$R"/usr/libexec "$R"/lib/systemd/system \
  "$R"/usr/lib/"$multiarch" \
  "$R"/etc/kvnet "$R"/usr/share/man/man1 "$R"/usr/share/man/man8 "$R"/usr/share/doc/kvnet \
  "$R"/usr/share/bash-completion/completions "$R"/usr/share/zsh/vendor-completions \
  "$R"/usr/share/fish/vendor_completions.d "$R"/usr/share/lintian/overrides "$R"/DEBIAN
# The same places as ./run.sh's /usr/local ones; the bridge helper is no user command
# and gets its capability in postinst, never a setuid bit.
put() { install -m 0755 "$bin_dir/$1" "$R/$2/$1"; }
put kvnetd usr/sbin
put kvnet usr/bin
put kvnet-ifup usr/bin
put kvnet-ifdown usr/bin
put kvnet-bridge-helper usr/libexec
install -m 0644 "$bin_dir"/libnss_kvnet.so "$R"/usr/lib/"$multiarch"/libnss_kvnet.so.2
# As dh_strip does for executables and shared libraries.
for b in "$R"/usr/sbin/* "$R"/usr/bin/* "$R"/usr/libexec/*; do
  strip --remove-section=.comment --remove-section=.note "$b"
done
strip --remove-section=.comment --remove-section=.note --strip-unneeded \
  "$R"/usr/lib/"$multiarch"/libnss_kvnet.so.2
install -m 0644 contrib/systemd/kvnetd.service contrib/systemd/kvnetd.socket "$R"/lib/systemd/system/
install -m 0644 "$D"/bridge.conf "$R"/etc/kvnet/bridge.conf
for page in contrib/man/*.1 contrib/man/*.8; do
  sec=${page##*.}
  gzip -9n <"$page" >"$R/usr/share/man/man$sec/$(basename "$page").gz"
done
install -m 0644 contrib/completions/kvnet "$R"/usr/share/bash-completion/completions/kvnet
install -m 0644 contrib/completions/_kvnet "$R"/usr/share/zsh/vendor-completions/_kvnet
install -m 0644 contrib/completions/kvnet.fish "$R"/usr/share/fish/vendor_completions.d/kvnet.fish
install -m 0644 "$D"/copyright "$R"/usr/share/doc/kvnet/copyright
install -m 0644 "$D"/lintian-overrides "$R"/usr/share/lintian/overrides/kvnet
# A native package (no Debian revision): its changelog is changelog.gz.
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
{
  printf 'kvnet (%s) unstable; urgency=medium\n\n' "$version"
  printf '  * Built from the kvnet workspace at commit %s.\n\n' "$commit"
  printf ' -- kvnet developers <kvnet@example.org>  %s\n' "$(date -u -R -d "@$SOURCE_DATE_EPOCH")"
} | gzip -9n >"$R"/usr/share/doc/kvnet/changelog.gz
chmod 0644 "$R"/usr/share/doc/kvnet/changelog.gz "$R"/usr/share/man/man*/*.gz

install -m 0755 "$D"/postinst "$D"/prerm "$D"/postrm "$R"/DEBIAN/
install -m 0644 "$D"/conffiles "$D"/triggers "$R"/DEBIAN/
(cd "$R" && find . -path ./DEBIAN -prune -o -path ./etc -prune -o -type f -printf '%P\0' |
  LC_ALL=C sort -z | xargs -0 md5sum) >"$R"/DEBIAN/md5sums
chmod 0644 "$R"/DEBIAN/md5sums
mkdir -p "$stage"/debian && printf 'Source: kvnet\n\nPackage: kvnet\nArchitecture: any\n' >"$stage"/debian/control
shlibs=$(cd "$stage" && dpkg-shlibdeps -O "$R"/usr/sbin/* "$R"/usr/bin/* "$R"/usr/libexec/* |
  sed -n 's/^shlibs:Depends=//p')
[ -n "$shlibs" ] || { echo "package.sh: dpkg-shlibdeps found no libraries" >&2; exit 1; }
size=$(du -sk --exclude=DEBIAN "$R" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" \
  -e "s/@SHLIBS@/$shlibs/" "$D"/control >"$R"/DEBIAN/control
mkdir -p "$out"
deb=$out/kvnet_${version}_${arch}.deb
dpkg-deb --root-owner-group --build "$R" "$deb" >/dev/null
echo "$deb"
