#!/usr/bin/env bash
# The coverage-guided campaign: each fuzz target of fuzz/ (cargo-fuzz, libFuzzer), one
# after the other, for SECONDS_PER_TARGET (default 600) each, at nice 10.
#   bench/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
# Stable Rust: --sanitizer none (kvnet's crates forbid unsafe; overflow checks and debug
# assertions stay on, as cargo-fuzz builds by default). cargo-fuzz is installed with
# `cargo install --locked` when missing. The corpus of each target grows in
# $FUZZ_DIR/corpus/TARGET (kept between runs; the checked-in fuzz/seeds/TARGET are read
# too), crashes go to $FUZZ_DIR/artifacts/TARGET/; FUZZ_DIR defaults to
# ${CARGO_TARGET_DIR:-target}/fuzz. Prints a table row per target: CPU seconds (user+sys),
# executions, corpus files, coverage, and the crash file if libFuzzer stopped on one
# (replay it with `cargo fuzz run --sanitizer none TARGET FILE`; add it to
# fuzz/seeds/TARGET once fixed). Exits 1 when a target crashed.
set -euo pipefail
cd "$(dirname "$0")/.."
export LC_ALL=C
secs=${1:-600}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(xml acl api dhcp4 dhcp6 dns ra)
target_dir=${CARGO_TARGET_DIR:-$PWD/target}
fuzz_dir=${FUZZ_DIR:-$target_dir/fuzz}
# libfuzzer-sys compiles libFuzzer (C++) in its build script.
command -v c++ >/dev/null || { echo "fuzz.sh: needs a C++ compiler (apt-get install g++)" >&2; exit 1; }
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
build=(--sanitizer none --target-dir "$target_dir/cargo-fuzz")
nice -n 10 cargo fuzz build "${build[@]}" >&2
echo "| target | CPU s | execs | execs/s | corpus files | cov | crash |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
status=0
for t in "${targets[@]}"; do
  mkdir -p "$fuzz_dir/corpus/$t" "$fuzz_dir/artifacts/$t"
  log="$fuzz_dir/$t.log"
  TIMEFORMAT='%U %S'
  rc=0
  { time nice -n 10 cargo fuzz run "${build[@]}" "$t" "$fuzz_dir/corpus/$t" "fuzz/seeds/$t" -- \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$fuzz_dir/artifacts/$t/" >"$log" 2>&1; } 2>"$fuzz_dir/$t.time" || rc=$?
  cpu=$(awk '{printf "%.0f", $1 + $2}' "$fuzz_dir/$t.time")
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
  if [ -z "$execs" ]; then
    execs=$(sed -n 's/^#\([0-9]*\).*/\1/p' "$log" | tail -n1)
  fi
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n1 | cut -d' ' -f2)
  files=$(find "$fuzz_dir/corpus/$t" -type f | wc -l)
  crash=$(sed -n 's/.*Test unit written to \(.*\)/\1/p' "$log" | tail -n1)
  [ "$rc" = 0 ] || { status=1; crash=${crash:-"exit $rc, see $log"}; }
  rate=$(awk -v e="${execs:-0}" -v c="$cpu" 'BEGIN {printf "%.0f", (c > 0 ? e / c : 0)}')
  echo "| $t | $cpu | ${execs:-?} | $rate | $files | ${cov:-?} | ${crash:-none} |"
done
exit $status
