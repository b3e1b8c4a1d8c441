#!/usr/bin/env bash
# Run libvirt's network-XML corpus (../shared/corpus/libvirt beside the checkout) through
# `kvnet net-validate --canonical`: each networkxml2xmlin file must print exactly its
# networkxml2xmlout twin, or be rejected when it has none; networkxml2confdata inputs must pass.
# The binary is $KVNET, else $CARGO_TARGET_DIR (default target)/debug/kvnet. Exits 0 with a note when the corpus is absent.
set -uo pipefail
cd "$(dirname "$0")/.."
corpus="${CORPUS:-../shared/corpus/libvirt}"
if [ ! -d "$corpus" ]; then
  echo "corpus.sh: no corpus at $corpus, skipping"
  exit 0
fi
kvnet="${KVNET:-${CARGO_TARGET_DIR:-target}/debug/kvnet}"
if [ ! -x "$kvnet" ]; then
  echo "corpus.sh: $kvnet not found; build it (cargo build -p kvnet-cli) or set KVNET" >&2
  exit 2
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0
fail=0
failed=()
for in in "$corpus"/networkxml2xmlin/*.xml; do
  name=$(basename "$in")
  out="$corpus/networkxml2xmlout/$name"
  if [ -f "$out" ]; then
    if "$kvnet" net-validate --canonical "$in" >"$tmp/got" 2>"$tmp/err" && diff -u "$out" "$tmp/got" >"$tmp/diff"; then
      pass=$((pass + 1))
    else
      fail=$((fail + 1))
      failed+=("$name")
      echo "FAIL $name"
      cat "$tmp/err" "$tmp/diff" 2>/dev/null | sed 's/^/    /'
    fi
  else
    if "$kvnet" net-validate --canonical "$in" >/dev/null 2>"$tmp/err"; then
      fail=$((fail + 1))
      failed+=("$name")
      echo "FAIL $name: accepted, but libvirt rejects it"
    else
      pass=$((pass + 1))
      echo "ok   $name rejected: $(head -n1 "$tmp/err")"
    fi
  fi
done
for in in "$corpus"/networkxml2confdata/*.xml; do
  name=confdata/$(basename "$in")
  if "$kvnet" net-validate "$in" >/dev/null 2>"$tmp/err"; then
    pass=$((pass + 1))
  else
    fail=$((fail + 1))
    failed+=("$name")
    echo "FAIL $name: $(head -n1 "$tmp/err")"
  fi
done
echo "corpus: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
