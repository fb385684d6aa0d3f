#!/usr/bin/env bash
# Fuzzes the bundled broker's request path (fuzz/fuzz_targets/broker_request.rs: one request
# frame of arbitrary bytes -> header parser, decoders and handlers of a real temp-dir broker)
# with cargo-fuzz (libFuzzer) for a given time, then prints how many inputs ran and whether
# anything crashed. The fuzz crate depends on the broker crate alone, so no librdkafka is built.
#
#   scripts/fuzz.sh [--time 10m] [--jobs N] [--rss-limit-mb MB]
#
# Installs nightly Rust and cargo-fuzz if missing. The corpus grows in fuzz/corpus/broker_request
# (git-ignored) and is seeded from the deterministic smoke test's frame shapes on first use;
# crashes land in fuzz/artifacts/broker_request/ and make the script exit 1.
set -euo pipefail
cd "$(dirname "$0")/.."

time_spec=10m
jobs=1
rss_mb=2048
while [ $# -gt 0 ]; do
    case "$1" in
        --time) time_spec=$2; shift 2 ;;
        --jobs) jobs=$2; shift 2 ;;
        --rss-limit-mb) rss_mb=$2; shift 2 ;;
        -h|--help) sed -n 2,12p "$0"; exit 0 ;;
        *) echo "fuzz.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done

seconds() {
    local t=$1
    case "$t" in
        *h) echo $(( ${t%h} * 3600 )) ;;
        *m) echo $(( ${t%m} * 60 )) ;;
        *s) echo "${t%s}" ;;
        *[0-9]) echo "$t" ;;
        *) echo "fuzz.sh: --time '$t' is not like 90s, 10m or 1h" >&2; exit 2 ;;
    esac
}
total=$(seconds "$time_spec")

rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

corpus=fuzz/corpus/broker_request
mkdir -p "$corpus" fuzz/artifacts/broker_request
if [ -z "$(ls -A "$corpus")" ]; then
    cargo run --quiet -p kbench-broker --example fuzz_seeds -- "$corpus"
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT

cd fuzz
cargo +nightly fuzz build broker_request
echo "fuzz.sh: fuzzing broker_request for ${total}s with $jobs job(s)" >&2
set +e
parallel=()
if [ "$jobs" -gt 1 ]; then parallel=(-jobs="$jobs" -workers="$jobs"); fi
rm -f fuzz-*.log
# The default corpus dir of cargo-fuzz is fuzz/corpus/broker_request.
cargo +nightly fuzz run broker_request -- \
    -max_total_time="$total" -rss_limit_mb="$rss_mb" "${parallel[@]}" \
    -print_final_stats=1 2>&1 | tee "$log" | grep -E '^(#[0-9]+\s+(pulse|REDUCE|NEW)|Done|==|SUMMARY|stat::)' | tail -n 40
status=${PIPESTATUS[0]}
set -e
cd ..

# With --jobs, each worker's figures are in its own fuzz/fuzz-N.log.
runs=$({ cat "$log" fuzz/fuzz-*.log 2>/dev/null || true; } \
    | { grep -oE '^stat::number_of_executed_units: *[0-9]+' || true; } \
    | awk '{s += $2} END {print s + 0}')
crashes=$(find fuzz/artifacts/broker_request -type f | wc -l)
echo "fuzz.sh: executions: $runs; corpus: $(find "$corpus" -type f | wc -l) inputs; crash artifacts: $crashes"
if [ "$status" -ne 0 ] || [ "$crashes" -gt 0 ]; then
    echo "fuzz.sh: the fuzzer found a crash (exit $status); reproduce with: cd fuzz && cargo +nightly fuzz run broker_request fuzz/artifacts/broker_request/<file>" >&2
    exit 1
fi
