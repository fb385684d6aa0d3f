#!/usr/bin/env bash
# kbench's transactional produce vs Apache Kafka's kafka-producer-perf-test, with the same
# --transactional-id prefix, --transaction-duration-ms, record size, acks=all, linger.ms and
# batch.size, on the same broker: the bundled one (`kbench broker`, a separate process) and
# Apache Kafka (scripts/kafka.sh, KRaft on loopback). Rounds alternate the order of the tools;
# the medians and kbench's ratio are printed per broker, with the per-round figures, and the
# commit latency that only kbench measures. A benchmark, not a test: run it on a quiet machine.
#
# Usage: scripts/bench-txn-vs-perf-test.sh [--rounds 3] [--records 500000] [--record-size 512]
#          [--transaction-duration-ms 100] [--throughput -1] [--partitions 1] [--linger-ms 5]
#          [--batch-size 1048576] [--brokers "bundled kafka"] [--kafka-port 39192]
#          [--json FILE] [--keep]
# Both tools are closed-loop with --throughput -1 (the default): records/s is the question.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/bench-common.sh
source scripts/lib/bench-common.sh

rounds=3 records=500000 size=512 duration=100 throughput=-1 partitions=1 linger=5
batch=1048576 brokers="bundled kafka" kafka_port=39192 json_out="" keep=0
while (($#)); do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --records) records=$2; shift 2 ;;
    --record-size) size=$2; shift 2 ;;
    --transaction-duration-ms) duration=$2; shift 2 ;;
    --throughput) throughput=$2; shift 2 ;;
    --partitions) partitions=$2; shift 2 ;;
    --linger-ms) linger=$2; shift 2 ;;
    --batch-size) batch=$2; shift 2 ;;
    --brokers) brokers=$2; shift 2 ;;
    --kafka-port) kafka_port=$2; shift 2 ;;
    --json) json_out=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) bench_die "unknown option '$1' (see --help)" ;;
  esac
done
for opt in rounds records size duration partitions batch kafka_port; do
  bench_need_int "--${opt//_/-}" "${!opt}"
done
[[ $linger =~ ^[0-9]+$ ]] || bench_die "--linger-ms wants an integer >= 0, got '$linger'"
[[ $throughput == -1 || $throughput =~ ^[1-9][0-9]*$ ]] || bench_die "--throughput wants -1 or a rate, got '$throughput'"
((size >= 36)) || bench_die "--record-size must be at least 36 (kbench's stamp)"
for b in $brokers; do
  case $b in bundled|kafka) ;; *) bench_die "--brokers takes bundled and/or kafka, got '$b'" ;; esac
done
[[ -z $json_out ]] || mkdir -p "$(dirname "$json_out")"

bench_note "building kbench (release)..."
cargo build --release --locked -q
kbench=target/release/kbench
scripts/kafka.sh fetch 2>&1 | sed 's/^/  /' >&2

work=$(mktemp -d "${TMPDIR:-/tmp}/kbench-bench-txn.XXXXXX")
export KBENCH_KAFKA_STATE=$work/kafka
bundled_pid="" kafka_started=0
cleanup() {
  local rc=$?
  bench_stop_pid "$bundled_pid"
  if ((kafka_started)); then scripts/kafka.sh stop >/dev/null 2>&1 || true; fi
  if ((keep)); then bench_note "work dir kept: $work"; else rm -rf "$work"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

retention=$(bench_retention_bytes "$records" "$size" "$partitions")
limit=$((180 + records * size / 1000000))
declare -A addr
if [[ " $brokers " == *" kafka "* ]]; then
  bench_note "starting Apache Kafka on 127.0.0.1:$kafka_port (state $KBENCH_KAFKA_STATE)"
  kafka_started=1
  scripts/kafka.sh start --port "$kafka_port" --partitions "$partitions" \
    --config "log.retention.bytes=$retention" --config log.segment.bytes=67108864 \
    >"$work/kafka-start.out" 2>"$work/kafka-start.err" \
    || { cat "$work/kafka-start.err" >&2; bench_die "Apache Kafka did not start (output above)"; }
  addr[kafka]=127.0.0.1:$kafka_port
fi
if [[ " $brokers " == *" bundled "* ]]; then
  bench_note "starting the bundled broker (kbench broker, a separate process)"
  bench_start_bundled_broker "$kbench" "$work/bundled" "$work/bundled.log" \
    --num-partitions "$partitions" --segment-bytes 67108864 --retention-bytes "$retention"
  bundled_pid=$BENCH_BROKER_PID
  addr[bundled]=$BENCH_BROKER_ADDR
fi

rows=$work/rows.jsonl
: >"$rows"
seq_no=0

# One run of TOOL against BROKER in ROUND; appends its figures to $rows.
run_one() {
  local tool=$1 broker=$2 round=$3
  seq_no=$((seq_no + 1))
  local b=${addr[$broker]} topic="txn-$broker-$tool-$round" id="bench-txn-$broker-$tool-$round"
  local d="$work/run-$seq_no" figs
  mkdir -p "$d"
  case $tool in
    kbench)
      bench_run "$limit" "$d/out" "$d/err" "$d/times" -- "$kbench" produce --bootstrap-server "$b" \
        --topic "$topic" --partitions "$partitions" --num-records "$records" --record-size "$size" \
        --throughput "$throughput" --acks all --linger-ms "$linger" --batch-size "$batch" \
        --transactional-id "$id" --transaction-duration-ms "$duration" \
        --reporting-interval 60s --output-dir "$d/results"
      figs=$(python3 - "$d/results" <<'PY'
import glob, json, sys
s = json.load(open(glob.glob(sys.argv[1] + "/*/summary.json")[0]))
p = s["phases"][-1]["produce"]
t = p["transactions"]
print(f"records={p['records']} records_per_sec={p['records_per_sec']:.1f} errors={p['errors']} "
      f"p50_ms={p['service_latency_us']['p50'] / 1000} p99_ms={p['service_latency_us']['p99'] / 1000} "
      f"committed={t['committed']} records_per_txn={t['records_per_transaction']} "
      f"commit_p50_ms={t['commit_latency_us']['p50'] / 1000} commit_p99_ms={t['commit_latency_us']['p99'] / 1000} "
      f"commit_max_ms={t['commit_latency_us']['max'] / 1000} "
      f"init_ms={s['transactions']['init_transactions_ms'][0]}")
PY
) || bench_die "could not read kbench's summary in $d/results"
      ;;
    perf-test)
      # --command-property (KIP-1147) replaces --producer-props in Kafka 4.2.
      bench_run "$limit" "$d/out" "$d/err" "$d/times" -- scripts/java-tools.sh producer-perf \
        --bootstrap-server "$b" --topic "$topic" --num-records "$records" --record-size "$size" \
        --throughput "$throughput" --transactional-id "$id" --transaction-duration-ms "$duration" \
        --command-property acks=all "linger.ms=$linger" "batch.size=$batch"
      figs=$(python3 - "$d/out" "$records" <<'PY'
import re, sys
lines = [l for l in open(sys.argv[1]).read().splitlines() if "th." in l and "records sent" in l]
if not lines:
    sys.exit("no summary line")
m = re.match(r"(\d+) records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\), ([\d.]+) ms avg latency, ([\d.]+) ms max latency, (\d+) ms 50th, (\d+) ms 95th, (\d+) ms 99th", lines[-1])
if not m or int(m.group(1)) != int(sys.argv[2]):
    sys.exit(f"unexpected kafka-producer-perf-test summary: {lines[-1]}")
g = m.groups()
print(f"records={g[0]} records_per_sec={g[1]} p50_ms={g[5]} p99_ms={g[7]}")
PY
) || bench_die "could not parse kafka-producer-perf-test output in $d/out"
      ;;
  esac
  # shellcheck disable=SC2086  # figs is a word list on purpose
  bench_row "$rows" tool="$tool" broker="$broker" round="$round" $figs
  bench_note "round $round $broker $tool: $figs"
}

bench_note "$rounds rounds; $records records of $size bytes, --transaction-duration-ms $duration, acks=all linger.ms=$linger batch.size=$batch, throughput $throughput"
for round in $(seq "$rounds"); do
  for broker in $brokers; do
    for tool in $(bench_rotate "$((round - 1))" kbench perf-test); do
      run_one "$tool" "$broker" "$round"
    done
  done
done

python3 - "$rows" "$json_out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
out = {"rows": rows, "medians": {}}
print("per round (records/s):")
for r in rows:
    extra = ""
    if r["tool"] == "kbench":
        extra = (f"  commit p50 {r['commit_p50_ms']} ms p99 {r['commit_p99_ms']} ms, "
                 f"{r['committed']} transactions of {r['records_per_txn']} records")
    print(f"  round {r['round']} {r['broker']:8} {r['tool']:9} {r['records_per_sec']:>12}{extra}")
print("\nmedians:")
print(f"  {'broker':8} {'kbench rec/s':>13} {'perf-test rec/s':>16} {'ratio':>6} {'kbench p99 ms':>14} "
      f"{'perf-test p99 ms':>17} {'commit p50 ms':>14} {'commit p99 ms':>14}")
for broker in sorted({r["broker"] for r in rows}):
    k = [r for r in rows if r["broker"] == broker and r["tool"] == "kbench"]
    p = [r for r in rows if r["broker"] == broker and r["tool"] == "perf-test"]
    med = lambda xs, f: statistics.median(float(x[f]) for x in xs)
    m = {"kbench_records_per_sec": med(k, "records_per_sec"),
         "perf_test_records_per_sec": med(p, "records_per_sec"),
         "kbench_p99_ms": med(k, "p99_ms"), "perf_test_p99_ms": med(p, "p99_ms"),
         "kbench_commit_p50_ms": med(k, "commit_p50_ms"),
         "kbench_commit_p99_ms": med(k, "commit_p99_ms")}
    m["ratio"] = m["kbench_records_per_sec"] / m["perf_test_records_per_sec"]
    out["medians"][broker] = m
    print(f"  {broker:8} {m['kbench_records_per_sec']:>13.0f} {m['perf_test_records_per_sec']:>16.0f} "
          f"{m['ratio']:>5.2f}x {m['kbench_p99_ms']:>14.1f} {m['perf_test_p99_ms']:>17.1f} "
          f"{m['kbench_commit_p50_ms']:>14.2f} {m['kbench_commit_p99_ms']:>14.2f}")
print("\nlatency columns: each tool's own (kbench: service latency from the send call, as the perf "
      "test measures; commit latency only kbench reports)")
if sys.argv[2]:
    json.dump(out, open(sys.argv[2], "w"), indent=2)
PY
