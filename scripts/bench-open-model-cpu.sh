#!/usr/bin/env bash
# What a fixed-rate (open model) `kbench produce` costs the machine: the whole system's busy
# share (all processes: kbench, the bundled broker, anything else) over each run, from
# /proc/stat, plus the rate reached and the send delay. Several kbench binaries can be given to
# compare builds; they alternate round by round and medians are printed. A benchmark, not a
# test: run it on a quiet machine.
#
# Usage: scripts/bench-open-model-cpu.sh [--rounds N] [--rate R] [--records N]
#          [--record-size B] [KBENCH_BINARY...]
# Without a binary it builds and measures target/release/kbench. The bundled broker runs as a
# separate process on a temp dir.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/bench-common.sh
source scripts/lib/bench-common.sh

rounds=3 rate=500000 records=3000000 size=100
bins=()
while (($#)); do
  case "$1" in
    --rounds) bench_need_int "$1" "$2"; rounds=$2; shift 2 ;;
    --rate) bench_need_int "$1" "$2"; rate=$2; shift 2 ;;
    --records) bench_need_int "$1" "$2"; records=$2; shift 2 ;;
    --record-size) bench_need_int "$1" "$2"; size=$2; shift 2 ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    -*) bench_die "unknown option '$1' (see --help)" ;;
    *) [[ -x $1 ]] || bench_die "'$1' is not an executable kbench binary"; bins+=("$1"); shift ;;
  esac
done
if ((${#bins[@]} == 0)); then
  bench_note "building kbench (release)..."
  cargo build --release --locked -q
  bins=(target/release/kbench)
fi

work=$(mktemp -d)
BENCH_BROKER_PID=""
cleanup() { bench_stop_pid "$BENCH_BROKER_PID"; rm -rf "$work"; }
trap cleanup EXIT
bench_start_bundled_broker "${bins[0]}" "$work/broker" "$work/broker.log" \
  --retention-bytes 268435456 --segment-bytes 67108864
bench_note "broker: $BENCH_BROKER_ADDR; $records records of $size B at $rate records/s; $rounds rounds"

# user+nice+system+irq+softirq and idle+iowait+steal jiffies, all CPUs.
cpu_jiffies() { awk '/^cpu /{ print $2+$3+$4+$7+$8, $5+$6+$9 }' /proc/stat; }

results="$work/results.tsv"
n=0
for round in $(seq "$rounds"); do
  for bin in "${bins[@]}"; do
    n=$((n + 1)); out="$work/run-$n"
    read -r busy0 idle0 < <(cpu_jiffies)
    "$bin" produce --bootstrap-server "$BENCH_BROKER_ADDR" --topic "cpu-$n" --num-records "$records" \
      --record-size "$size" --throughput "$rate" --acks 1 --output-dir "$out" \
      --reporting-interval 60s >/dev/null 2>"$work/err" || { cat "$work/err" >&2; bench_die "$bin failed"; }
    read -r busy1 idle1 < <(cpu_jiffies)
    busy_pct=$(awk -v b=$((busy1 - busy0)) -v i=$((idle1 - idle0)) 'BEGIN { printf "%.1f", 100 * b / (b + i) }')
    stats=$(python3 -c 'import json,glob,sys; p=json.load(open(glob.glob(sys.argv[1]+"/*/summary.json")[0]))["phases"][0]["produce"]; print(p["records_per_sec"], p["send_delay_us"]["p50"], p["send_delay_us"]["p99"])' "$out")
    printf '%s\t%s\t%s\t%s\n' "$bin" "$round" "$busy_pct" "$stats" >>"$results"
    printf '  round %s %-32s busy %5s%%  (records/s, send delay p50, p99 µs: %s)\n' "$round" "$bin" "$busy_pct" "$stats" >&2
  done
done

python3 - "$results" <<'PY'
import statistics, sys
rows = [l.split("\t") for l in open(sys.argv[1]).read().splitlines()]
print("| kbench binary | machine busy (median) | records/s | send delay p50 µs | send delay p99 µs |")
print("|---|---:|---:|---:|---:|")
for b in dict.fromkeys(r[0] for r in rows):
    mine = [r for r in rows if r[0] == b]
    med = lambda k: statistics.median(float(r[k]) for r in mine)
    stats = [[float(x) for x in r[3].split()] for r in mine]
    col = lambda k: statistics.median(s[k] for s in stats)
    print(f"| {b} | {med(2):.1f}% | {col(0):,.0f} | {col(1):.0f} | {col(2):.0f} |")
PY
