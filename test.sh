#!/usr/bin/env bash
# The whole test suite: installs the system packages the tests need, then format and
# lint checks, unit tests, and the root-only integration tests in network namespaces.
set -euo pipefail
cd "$(dirname "$0")"
./scripts/deps.sh test
# CI builds once from a fresh clone: incremental caches would only double the disk used.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# The end-to-end tests run the kvnet and kvnetd binaries: build them first.
cargo build --workspace --locked
# Root-only tests are #[ignore = "needs root"] so a user's `cargo test` lists them as
# ignored rather than passing them untested; here (as root) they run with the rest.
# The fuzz targets' short run is kvnet-fuzzing's replay test (seeds and 20,000 mutants
# per target, a few seconds on stable); bench/fuzz.sh is the coverage-guided campaign.
cargo test --workspace --locked -- --include-ignored
if [ -d ../shared/corpus/libvirt ]; then
  ./scripts/corpus.sh
fi
