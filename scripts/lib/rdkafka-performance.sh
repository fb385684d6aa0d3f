# shellcheck shell=bash
# Sourced, not run: builds librdkafka's rdkafka_performance example from the source vendored in
# the rdkafka-sys crate, linked against the very librdkafka.a (and libzstd.a) that kbench's
# release build uses, so both tools run the same librdkafka.
#
#   source scripts/lib/rdkafka-performance.sh
#   perf=$(rdkafka_performance_build)   # needs `cargo build --release --locked` done first
#
# Rebuilt only when librdkafka.a is newer than the binary. Run from the repository root.

rdkafka_performance_build() {
  local lib out zstd src perf=target/release/rdkafka_performance
  # shellcheck disable=SC2012  # newest first; the paths are cargo's, without odd characters
  lib=$(ls -t target/release/build/rdkafka-sys-*/out/src/librdkafka.a 2>/dev/null | head -1)
  [ -n "$lib" ] || { echo "librdkafka.a not found under target/release/build; run cargo build --release --locked first" >&2; return 2; }
  out=$(dirname "$lib")
  # shellcheck disable=SC2012
  zstd=$(ls -t target/release/build/zstd-sys-*/out/libzstd.a 2>/dev/null | head -1)
  [ -n "$zstd" ] || { echo "libzstd.a not found under target/release/build; run cargo build --release --locked first" >&2; return 2; }
  if [ ! -x "$perf" ] || [ "$lib" -nt "$perf" ]; then
    src=$(cargo metadata --format-version 1 --locked | python3 -c 'import json, os, sys; m = json.load(sys.stdin); print(next(os.path.dirname(p["manifest_path"]) for p in m["packages"] if p["name"] == "rdkafka-sys"))') \
      || { echo "cargo metadata could not locate the rdkafka-sys source" >&2; return 2; }
    echo "building rdkafka_performance from $src/librdkafka/examples" >&2
    cc -O2 -o "$perf.tmp" "$src/librdkafka/examples/rdkafka_performance.c" -I"$out" \
      "$lib" "$zstd" -lssl -lcrypto -lz -lpthread -lm -ldl -lrt \
      || { echo "compiling rdkafka_performance failed (needs cc and the OpenSSL/zlib headers: apt-get install -y libssl-dev zlib1g-dev)" >&2; return 2; }
    mv "$perf.tmp" "$perf"
  fi
  echo "$perf"
}
