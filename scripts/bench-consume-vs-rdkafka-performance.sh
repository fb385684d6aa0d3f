#!/usr/bin/env bash
# kbench consume vs librdkafka's own rdkafka_performance in consumer mode (-G GROUP), on the
# same pre-filled topic of the same broker, same librdkafka: runs alternate (the order rotates
# each round), each with a fresh group, and the medians, their ratio and every round's figures
# are printed. A benchmark, not a test: run it on a quiet machine.
#
# The topic is pre-filled once by `kbench produce` (stamped records), so every kbench run also
# decodes every record's stamp, records its end-to-end latency and verifies its sequence; the
# script checks that kbench saw every record with 0 missing, duplicated or reordered.
# rdkafka_performance counts from its first record to its last; kbench's figure is Kafka's
# fetch.nMsg.sec (its run without the group join). Both clients get the settings
# rdkafka_performance sets for itself (queued.min.messages=1000000, session.timeout.ms=6000,
# auto.offset.reset=earliest); --kbench-defaults leaves kbench's librdkafka defaults instead.
#
# Usage: scripts/bench-consume-vs-rdkafka-performance.sh [--rounds N] [--records N]
#          [--record-size B] [--partitions N] [--kbench-defaults] [--baseline BINARY]
#          [--json FILE] [--keep-work]
# Defaults: 5 rounds, 1000000 records of 1024 B, 4 partitions; about 2 minutes. It starts the
# bundled broker (`kbench broker`, a separate process, --group-initial-rebalance-delay-ms 0) on
# a temp dir and stops it (by its pid) at the end.
# --baseline BINARY adds a third contender to every round: another kbench build (an older one,
# say) consuming the same way, for a before/after in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/bench-common.sh
source scripts/lib/bench-common.sh

rounds=5 records=1000000 size=1024 partitions=4 json_out="" keep=0 same_settings=1 baseline=""
while (($#)); do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --records) records=$2; shift 2 ;;
    --record-size) size=$2; shift 2 ;;
    --partitions) partitions=$2; shift 2 ;;
    --kbench-defaults) same_settings=0; shift ;;
    --baseline) baseline=$2; shift 2 ;;
    --json) json_out=$2; shift 2 ;;
    --keep-work) keep=1; shift ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) bench_die "unknown option '$1' (see --help)" ;;
  esac
done
for opt in rounds records size partitions; do
  bench_need_int "--${opt//_/-}" "${!opt}"
done
((size >= 64)) || bench_die "--record-size must be at least 64 (kbench's stamp is 36 bytes)"
[[ -z $json_out ]] || mkdir -p "$(dirname "$json_out")"

bench_note "building kbench (release)..."
cargo build --release --locked -q
kbench=target/release/kbench
contenders=(rdkafka_performance kbench)
if [[ -n $baseline ]]; then
  [[ -x $baseline ]] || bench_die "--baseline: '$baseline' is not an executable"
  contenders+=(kbench_baseline)
fi
# shellcheck source=scripts/lib/rdkafka-performance.sh
source scripts/lib/rdkafka-performance.sh
perf=$(rdkafka_performance_build)

work=$(mktemp -d "${TMPDIR:-/tmp}/kbench-bench-consume.XXXXXX")
broker_pid=""
cleanup() {
  local rc=$?
  bench_stop_pid "$broker_pid"
  if ((keep)); then bench_note "work dir kept: $work"; else rm -rf "$work"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bench_start_bundled_broker "$kbench" "$work/broker" "$work/broker.log" \
  --num-partitions "$partitions" --group-initial-rebalance-delay-ms 0 --segment-bytes 67108864 \
  --retention-bytes "$(bench_retention_bytes "$records" "$size" "$partitions")"
broker_pid=$BENCH_BROKER_PID bootstrap=$BENCH_BROKER_ADDR
limit=$((120 + records * size / 2000000))

topic=consume-bench
bench_note "broker $bootstrap (pid $broker_pid); pre-filling '$topic': $records records of $size B, $partitions partitions"
bench_run "$limit" "$work/fill.out" "$work/fill.err" "$work/fill.times" -- "$kbench" produce \
  --bootstrap-server "$bootstrap" --topic "$topic" --partitions "$partitions" \
  --num-records "$records" --record-size "$size" --throughput -1 --acks 1 --linger-ms 5 \
  --batch-size 1000000 --no-results --reporting-interval 60s

# The settings rdkafka_performance's consumer sets for itself (rdkafka_performance.c).
same=(queued.min.messages=1000000 session.timeout.ms=6000 auto.offset.reset=earliest)
kb_props=()
((same_settings)) && kb_props=(--consumer-props "${same[@]}")

rows=$work/rows.tsv
: >"$rows"
n=0
for round in $(seq "$rounds"); do
  for tool in $(bench_rotate "$((round - 1))" "${contenders[@]}"); do
    n=$((n + 1)) group="bench-$tool-$n-$$" d="$work/run-$n"
    mkdir -p "$d"
    if [[ $tool == kbench* ]]; then
      bin=$kbench
      [[ $tool == kbench_baseline ]] && bin=$baseline
      bench_run "$limit" "$d/out" "$d/err" "$d/times" -- "$bin" consume \
        --bootstrap-server "$bootstrap" --topic "$topic" --num-records "$records" \
        --group "$group" "${kb_props[@]}" --reporting-interval 60s --output-dir "$d/res"
      rate=$(bench_consumer_line_figures "$d/out" | tr ' ' '\n' | sed -n 's/^fetch_records_per_sec=//p')
      # Every record decoded, its latency recorded and its sequence verified.
      check=$(python3 - "$d/res" "$records" <<'PY'
import glob, json, sys
s = json.load(open(glob.glob(sys.argv[1] + "/*/summary.json")[0]))
c = {k: 0 for k in ("records", "e2e", "lost", "duplicated", "reordered")}
for ph in s["phases"]:
    k = ph.get("consume") or {}
    c["records"] += k.get("records", 0)
    c["e2e"] += k.get("e2e_latency_us", {}).get("count", 0)
    for f in ("lost", "duplicated", "reordered"):
        c[f] += k.get(f) or 0
want = int(sys.argv[2])
ok = c["records"] == want and c["e2e"] == want and c["lost"] == c["duplicated"] == c["reordered"] == 0
print(("ok" if ok else "FAILED") + " " + " ".join(f"{k}={v}" for k, v in c.items()))
PY
)
      [[ $check == ok* ]] || bench_die "kbench consume did not see and verify every record: $check"
    else
      bench_run "$limit" "$d/out" "$d/err" "$d/times" -- "$perf" -G "$group" -t "$topic" \
        -b "$bootstrap" -c "$records" "${same[@]/#/-X}"
      line=$(grep 'messages (.* bytes) consumed in' "$d/out" | tail -1)
      got=$(sed -n 's/^% \([0-9]*\) messages.*/\1/p' <<<"$line")
      [[ $got == "$records" ]] || bench_die "rdkafka_performance consumed ${got:-no} of $records records: $line"
      rate=$(sed -n 's/.* \([0-9]*\) msgs\/s .*/\1/p' <<<"$line")
      check="records=$got"
    fi
    read -r wall user sys <"$d/times"
    printf '%s\t%s\t%s\t%s\t%s\n' "$tool" "$round" "$rate" "$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f", u + s }')" "$wall" >>"$rows"
    printf '  round %s %-20s %12.0f records/s  client CPU %5.2f s  (%s)\n' "$round" "$tool" "$rate" \
      "$(awk -v u="$user" -v s="$sys" 'BEGIN { print u + s }')" "$check" >&2
  done
done

python3 - "$rows" "$json_out" "$records" "$size" "$partitions" "$same_settings" "$baseline" <<'PY'
import json, statistics, sys
rows = [l.split("\t") for l in open(sys.argv[1]).read().splitlines()]
tools = [t for t in ("rdkafka_performance", "kbench", "kbench_baseline") if any(r[0] == t for r in rows)]
names = {"rdkafka_performance": "rdkafka_performance -G", "kbench": "kbench consume",
         "kbench_baseline": "kbench consume (baseline)"}
runs = {t: [float(r[2]) for r in rows if r[0] == t] for t in tools}
cpu = {t: [float(r[3]) for r in rows if r[0] == t] for t in tools}
med = {t: statistics.median(runs[t]) for t in tools}
others = tools[1:]
paired = {t: [k / r for k, r in zip(runs[t], runs["rdkafka_performance"])] for t in others}
ratio = {t: med[t] / med["rdkafka_performance"] for t in others}
print(f"consume {int(sys.argv[3]):,} records of {sys.argv[4]} B from {sys.argv[5]} partitions, fresh group each run; "
      f"medians of {len(runs['kbench'])} alternating rounds (records/s)")
print()
print("| | " + " | ".join(names[t] for t in tools) + " | " + " | ".join(f"{names[t].split(' (')[0]}{' baseline' if t.endswith('baseline') else ''} / rdkafka_performance" for t in others) + " |")
print("|---|" + "---:|" * (len(tools) + len(others)))
print("| median | " + " | ".join(f"{med[t]:,.0f}" for t in tools) + " | " + " | ".join(f"{ratio[t]:.2f}" for t in others) + " |")
for i in range(len(runs["kbench"])):
    print(f"| round {i + 1} | " + " | ".join(f"{runs[t][i]:,.0f}" for t in tools) + " | "
          + " | ".join(f"{paired[t][i]:.2f}" for t in others) + " |")
mcpu = {t: statistics.median(cpu[t]) for t in tools}
print("| client CPU s, median | " + " | ".join(f"{mcpu[t]:.2f}" for t in tools) + " | "
      + " | ".join(f"{mcpu[t] / mcpu['rdkafka_performance']:.2f}" for t in others) + " |")
print()
for t in others:
    print(f"{names[t]} / rdkafka_performance, paired (same round): median {statistics.median(paired[t]):.2f}, "
          f"range {min(paired[t]):.2f}-{max(paired[t]):.2f}")
if sys.argv[2]:
    out = {"records": int(sys.argv[3]), "record_size": int(sys.argv[4]), "partitions": int(sys.argv[5]),
           "same_client_settings": sys.argv[6] == "1", "baseline": sys.argv[7] or None,
           "median_records_per_sec": med, "ratio": ratio, "paired_ratios": paired,
           "runs": {t: [round(v) for v in runs[t]] for t in tools}, "client_cpu_s": cpu}
    json.dump(out, open(sys.argv[2], "w"), indent=2)
PY
