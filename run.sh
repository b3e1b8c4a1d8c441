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
cargo build --release --locked --bin kvnetd --bin kvnet
install -m 0755 target/release/kvnet /usr/local/bin/kvnet
echo "kvnet CLI installed as /usr/local/bin/kvnet; starting kvnetd (Ctrl-C stops the daemon, networks stay up)"
exec target/release/kvnetd "$@"
