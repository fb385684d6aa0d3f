#!/usr/bin/env bash
# kbench produce vs librdkafka's own rdkafka_performance, on the same broker, same librdkafka,
# same record sizes, acks and batching; runs alternate (A, B, A, B, ...) and the medians and
# their ratio are printed. A benchmark, not a test: run it on a quiet machine.
#
# rdkafka_performance is built from the librdkafka source vendored in the rdkafka-sys crate and
# linked against the very librdkafka.a that kbench's release build uses.
#
# Usage: scripts/bench-vs-rdkafka-performance.sh [--rounds N] [--sizes "100 1024"]
#          [--records-100 N] [--records-1024 N] [--acks 1] [--linger-ms 5]
#          [--batch-size 1000000] [--bootstrap-server HOST:PORT] [--json FILE]
# Without --bootstrap-server it starts the bundled broker (`kbench broker`) on a temp dir.
set -euo pipefail
cd "$(dirname "$0")/.."

# Runs long enough (several seconds each) that start-up and the final flush, which both tools
# count in their elapsed time, do not dominate the rate.
rounds=5 sizes="100 1024" rec100=5000000 rec1024=1000000 acks=1 linger=5 batch=1000000
bootstrap="" json_out=""
while (($#)); do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --sizes) sizes=$2; shift 2 ;;
    --records-100) rec100=$2; shift 2 ;;
    --records-1024) rec1024=$2; shift 2 ;;
    --acks) acks=$2; shift 2 ;;
    --linger-ms) linger=$2; shift 2 ;;
    --batch-size) batch=$2; shift 2 ;;
    --bootstrap-server) bootstrap=$2; shift 2 ;;
    --json) json_out=$2; shift 2 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done

echo "building kbench (release)..." >&2
cargo build --release --locked -q
kbench=target/release/kbench
# shellcheck source=scripts/lib/rdkafka-performance.sh
source scripts/lib/rdkafka-performance.sh
perf=$(rdkafka_performance_build)

work=$(mktemp -d)
broker_pid=""
cleanup() { [ -n "$broker_pid" ] && kill "$broker_pid" 2>/dev/null && wait "$broker_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
if [ -z "$bootstrap" ]; then
  "$kbench" broker --listen 127.0.0.1:0 --data-dir "$work/broker" --retention-bytes 268435456 \
    --segment-bytes 67108864 2>"$work/broker.log" &
  broker_pid=$!
  for _ in $(seq 100); do
    bootstrap=$(sed -n 's/.*listening on \([0-9.:]*\).*/\1/p' "$work/broker.log" | head -1)
    [ -n "$bootstrap" ] && break
    sleep 0.1
  done
  [ -n "$bootstrap" ] || { echo "the bundled broker did not start: $(cat "$work/broker.log")" >&2; exit 2; }
fi
echo "broker: $bootstrap; acks=$acks linger.ms=$linger batch.size=$batch; $rounds rounds" >&2

results="$work/results.tsv"
n=0
for round in $(seq "$rounds"); do
  for size in $sizes; do
    records=$rec1024; [ "$size" -le 100 ] && records=$rec100
    for tool in rdkafka_performance rdkafka_performance_copy kbench; do
      n=$((n + 1)); topic="bench-$n"
      if [ "$tool" = kbench ]; then
        dir="$work/kb-$n"
        "$kbench" produce --bootstrap-server "$bootstrap" --topic "$topic" --num-records "$records" \
          --record-size "$size" --throughput -1 --acks "$acks" --linger-ms "$linger" \
          --batch-size "$batch" --output-dir "$dir" --reporting-interval 60s >/dev/null 2>"$work/err"
        rate=$(python3 -c 'import json,glob,sys; s=json.load(open(glob.glob(sys.argv[1]+"/*/summary.json")[0])); print(s["phases"][0]["produce"]["records_per_sec"])' "$dir")
      else
        # Without -D, rdkafka_performance hands librdkafka the same buffer for every record, no
        # copy; -D copies each record first, as any tool sending distinct records (kbench's
        # are stamped) must. Both are measured.
        copy=(); [ "$tool" = rdkafka_performance_copy ] && copy=(-D)
        line=$("$perf" -P "${copy[@]}" -t "$topic" -b "$bootstrap" -s "$size" -c "$records" -a "$acks" \
          -X "linger.ms=$linger" -X "batch.size=$batch" -X "queue.buffering.max.messages=100000" 2>&1 | grep 'messages produced' | tail -1)
        rate=$(echo "$line" | sed -n 's/.* \([0-9]*\) msgs\/s and.*/\1/p')
        delivered=$(echo "$line" | sed -n 's/.* \([0-9]*\) delivered .*/\1/p')
        [ "$delivered" = "$records" ] || { echo "rdkafka_performance delivered $delivered of $records: $line" >&2; exit 2; }
      fi
      printf '%s\t%s\t%s\t%s\n' "$size" "$tool" "$round" "$rate" >>"$results"
      printf '  round %s size %s %-20s %12.0f records/s\n' "$round" "$size" "$tool" "$rate" >&2
    done
  done
done

python3 - "$results" "$json_out" "$acks" "$linger" "$batch" <<'PY'
import json, statistics, sys
rows = [l.split("\t") for l in open(sys.argv[1]).read().splitlines()]
out = {"acks": sys.argv[3], "linger_ms": int(sys.argv[4]), "batch_size": int(sys.argv[5]), "sizes": {}}
tools = ("rdkafka_performance", "rdkafka_performance_copy", "kbench")
print("| record size | rdkafka_performance | rdkafka_performance -D (copies each record) | kbench produce | kbench / rdkafka_performance | kbench / rdkafka_performance -D |")
print("|---|---:|---:|---:|---:|---:|")
for size in sorted({int(r[0]) for r in rows}):
    med = {t: statistics.median(float(r[3]) for r in rows if int(r[0]) == size and r[1] == t) for t in tools}
    ratio = med["kbench"] / med["rdkafka_performance"]
    ratio_copy = med["kbench"] / med["rdkafka_performance_copy"]
    runs = {t: [round(float(r[3])) for r in rows if int(r[0]) == size and r[1] == t] for t in med}
    out["sizes"][size] = {"median_records_per_sec": med, "ratio": ratio, "ratio_vs_copying": ratio_copy, "runs": runs}
    print(f"| {size} B | {med['rdkafka_performance']:,.0f} | {med['rdkafka_performance_copy']:,.0f} | {med['kbench']:,.0f} | {ratio:.2f} | {ratio_copy:.2f} |")
if sys.argv[2]:
    json.dump(out, open(sys.argv[2], "w"), indent=2)
PY
