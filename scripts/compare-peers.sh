#!/usr/bin/env bash
# kbench side by side with the tools people trust, and the bundled broker side by side with
# Apache Kafka, in one run on one machine (issue 5). Every comparison alternates its contenders
# round by round (the order rotates each round) and reports medians and the ratios of medians
# from the same run. A benchmark, not a test: numbers from a shared machine are noisy.
#
# (a) load generators on the same broker (Apache Kafka, scripts/kafka.sh, KRaft on loopback):
#     produce  kbench produce / kafka-producer-perf-test / rdkafka_performance, the same record
#              count and size, acks, linger.ms, batch.size, 32 MiB of client buffer, idempotence
#              off, no compression, null keys:
#              1. closed model (as fast as each accepts): records/s and each tool's percentiles;
#                 rdkafka_performance runs twice per round, plain (throughput) and with -l
#                 (per-message latency, written to a file with -A), so the cost of -l is visible;
#              2. fixed rate (half the lower closed-model median, or --rate): latency percentiles,
#                 kbench's corrected (from the intended send time) and service (from the send call).
#     consume  kbench consume / kafka-consumer-perf-test reading the same pre-filled topic with
#              fresh groups: records/s including the group join, and fetch records/s without it.
# (b) brokers under the same kbench workload: the bundled broker (a separate `kbench broker`
#     process) vs Apache Kafka: produce and consume records/s, e2e p50/p99/p99.9 at a fixed rate
#     (half the lower produce median, or --e2e-rate), and broker CPU per MiB moved, from
#     utime+stime in /proc/PID/stat of each broker process around each run.
#
# Usage: scripts/compare-peers.sh [--rounds N] [--records N] [--record-size B] [--partitions N]
#          [--acks 0|1|all] [--linger-ms N] [--batch-size B] [--rate R] [--fixed-seconds S]
#          [--e2e-rate R] [--e2e-duration S] [--kafka-port N] [--json FILE] [--keep-work]
# Defaults: 3 rounds, 500000 records of 1024 B, 4 partitions, acks=1, linger.ms=5,
# batch.size=65536, fixed-rate runs of 15 s, e2e 15 s (+3 s warm-up); about 8-10 minutes.
# Quick check: scripts/compare-peers.sh --rounds 1 --records 50000 --fixed-seconds 3 --e2e-duration 3
# Needs: cargo, cc + OpenSSL/zlib headers (rdkafka_performance), Java 17, Maven (first fetch).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/bench-common.sh
source scripts/lib/bench-common.sh
# shellcheck source=scripts/lib/rdkafka-performance.sh
source scripts/lib/rdkafka-performance.sh

rounds=3 records=500000 size=1024 partitions=4 acks=1 linger=5 batch=65536
rate="" fixed_seconds=15 e2e_rate="" e2e_duration=15 kafka_port=39592 json_out="" keep=0
buffer_bytes=33554432
while (($#)); do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --records) records=$2; shift 2 ;;
    --record-size) size=$2; shift 2 ;;
    --partitions) partitions=$2; shift 2 ;;
    --acks) acks=$2; shift 2 ;;
    --linger-ms) linger=$2; shift 2 ;;
    --batch-size) batch=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --fixed-seconds) fixed_seconds=$2; shift 2 ;;
    --e2e-rate) e2e_rate=$2; shift 2 ;;
    --e2e-duration) e2e_duration=$2; shift 2 ;;
    --kafka-port) kafka_port=$2; shift 2 ;;
    --json) json_out=$2; shift 2 ;;
    --keep-work) keep=1; shift ;;
    -h|--help) sed -n '2,32p' "$0"; exit 0 ;;
    *) bench_die "unknown option '$1' (see --help)" ;;
  esac
done
for opt in rounds records size partitions batch fixed_seconds e2e_duration kafka_port; do
  bench_need_int "--${opt//_/-}" "${!opt}"
done
[[ $linger =~ ^[0-9]+$ ]] || bench_die "--linger-ms wants an integer >= 0, got '$linger'"
case $acks in 0|1|all|-1) ;; *) bench_die "--acks wants 0, 1 or all, got '$acks'" ;; esac
[[ -z $rate ]] || bench_need_int --rate "$rate"
[[ -z $e2e_rate ]] || bench_need_int --e2e-rate "$e2e_rate"
((size >= 64)) || bench_die "--record-size must be at least 64 (kbench's stamp is 36 bytes, rdkafka_performance -l writes ~30)"
[[ -z $json_out ]] || mkdir -p "$(dirname "$json_out")"
rdk_acks=$acks; [[ $acks == all ]] && rdk_acks=-1

bench_note "building kbench (release) and rdkafka_performance..."
cargo build --release --locked -q
kbench=target/release/kbench
perf=$(rdkafka_performance_build)
scripts/kafka.sh fetch 2>&1 | sed 's/^/  /' >&2

work=$(mktemp -d "${TMPDIR:-/tmp}/kbench-compare-peers.XXXXXX")
export KBENCH_KAFKA_STATE=$work/kafka
bundled_pid=""
kafka_started=0
cleanup() {
  local rc=$?
  bench_stop_pid "$bundled_pid"
  if ((kafka_started)); then scripts/kafka.sh stop >/dev/null 2>&1 || true; fi
  if ((keep)); then bench_note "work dir kept: $work"; else rm -rf "$work"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Retention keeps the disk bounded (many topics of records x size each) yet never trims the
# topics that are read back: a partition may hold twice what one run writes to it.
retention=$(bench_retention_bytes "$records" "$size" "$partitions")
segment=67108864
limit=$((180 + records * size / 2000000))

bench_note "starting Apache Kafka on 127.0.0.1:$kafka_port (state $KBENCH_KAFKA_STATE)"
kafka_started=1
scripts/kafka.sh start --port "$kafka_port" --partitions "$partitions" \
  --config "log.retention.bytes=$retention" --config "log.segment.bytes=$segment" \
  --config log.retention.check.interval.ms=10000 >"$work/kafka-start.out" 2>"$work/kafka-start.err" \
  || { cat "$work/kafka-start.err" >&2; bench_die "Apache Kafka did not start (output above)"; }
kafka=127.0.0.1:$kafka_port
kafka_pid=$(<"$KBENCH_KAFKA_STATE/kafka.pid")
[[ $kafka_pid =~ ^[1-9][0-9]*$ ]] || bench_die "no pid in $KBENCH_KAFKA_STATE/kafka.pid"

bench_note "starting the bundled broker (kbench broker, a separate process)"
bench_start_bundled_broker "$kbench" "$work/bundled" "$work/bundled.log" \
  --num-partitions "$partitions" --group-initial-rebalance-delay-ms 0 \
  --segment-bytes "$segment" --retention-bytes "$retention"
bundled_pid=$BENCH_BROKER_PID
bundled=$BENCH_BROKER_ADDR
bench_note "Kafka $kafka (pid $kafka_pid), bundled broker $bundled (pid $bundled_pid)"

rows=$work/rows.jsonl
: >"$rows"
seq_no=0

kbench_produce_args() {
  echo --acks "$acks" --linger-ms "$linger" --batch-size "$batch" \
    --producer-props "queue.buffering.max.kbytes=$((buffer_bytes / 1024))" \
    --reporting-interval 60s
}

# One produce run of TOOL on Kafka. MODE is max or fixed; RATE applies to fixed.
produce_run() {
  local tool=$1 mode=$2 round=$3 n=$4 r=${5:--1}
  seq_no=$((seq_no + 1))
  local topic="pa-$mode-$tool-$round" d="$work/run-$seq_no"
  mkdir -p "$d"
  local figs
  case $tool in
    kbench)
      # shellcheck disable=SC2046  # word list on purpose
      bench_run "$limit" "$d/out" "$d/err" "$d/times" -- "$kbench" produce --bootstrap-server "$kafka" \
        --topic "$topic" --partitions "$partitions" --num-records "$n" --record-size "$size" \
        --throughput "$r" $(kbench_produce_args) --output-dir "$d/results"
      figs=$(bench_kbench_figures "$d/results")
      ;;
    kafka-producer-perf-test)
      bench_run "$limit" "$d/out" "$d/err" "$d/times" -- scripts/java-tools.sh producer-perf \
        --bootstrap-server "$kafka" --topic "$topic" --num-records "$n" --record-size "$size" \
        --throughput "$r" --command-property "acks=$acks" "linger.ms=$linger" "batch.size=$batch" \
        "buffer.memory=$buffer_bytes" enable.idempotence=false
      figs=$(python3 - "$d/out" "$n" <<'PY'
import re, sys
line = [l for l in open(sys.argv[1]).read().splitlines() if "th." in l and "records sent" in l][-1]
m = re.match(r"(\d+) records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\), ([\d.]+) ms avg latency, ([\d.]+) ms max latency, (\d+) ms 50th, (\d+) ms 95th, (\d+) ms 99th, (\d+) ms 99.9th", line)
if not m or int(m.group(1)) != int(sys.argv[2]):
    sys.exit(f"unexpected kafka-producer-perf-test summary: {line}")
g = m.groups()
print(f"produce_records={g[0]} produce_records_per_sec={g[1]} produce_mb_per_sec={g[2]} "
      f"avg_ms={g[3]} max_ms={g[4]} p50_ms={g[5]} p95_ms={g[6]} p99_ms={g[7]} p999_ms={g[8]}")
PY
) || bench_die "could not parse kafka-producer-perf-test output in $d/out"
      ;;
    rdkafka_performance|rdkafka_performance-l)
      local -a extra=()
      [[ $tool == rdkafka_performance-l ]] && extra=(-l -A "$d/latencies")
      ((r > 0)) && extra+=(-r "$r")
      bench_run "$limit" "$d/out" "$d/err" "$d/times" -- "$perf" -P -t "$topic" -b "$kafka" \
        -s "$size" -c "$n" -a "$rdk_acks" -X "linger.ms=$linger" -X "batch.size=$batch" \
        -X "queue.buffering.max.kbytes=$((buffer_bytes / 1024))" -X enable.idempotence=false \
        "${extra[@]}"
      figs=$(python3 - "$d/out" "$n" "$d/latencies" <<'PY'
import os, re, sys
lines = [l for l in open(sys.argv[1]).read().splitlines() if "messages produced" in l]
if not lines:
    sys.exit("no summary line")
m = re.search(r"(\d+) delivered .* in (\d+)ms: (\d+) msgs/s and ([\d.]+) MB/s", lines[-1])
if not m or int(m.group(1)) != int(sys.argv[2]):
    sys.exit(f"unexpected rdkafka_performance summary (not every record delivered?): {lines[-1]}")
out = f"produce_records={m.group(1)} produce_records_per_sec={m.group(3)} produce_mb_per_sec={float(m.group(4)) / 1.048576:.3f}"
if os.path.exists(sys.argv[3]):
    v = sorted(int(x) for x in open(sys.argv[3]).read().split())
    if v:
        # Same rule as Kafka's tool: value at index int(p * n) of the sorted samples (µs here).
        q = lambda p: v[min(len(v) - 1, int(p * len(v)))]
        out += f" lat_p50_us={q(0.5)} lat_p99_us={q(0.99)} lat_p999_us={q(0.999)} lat_samples={len(v)}"
    os.remove(sys.argv[3])
print(out)
PY
) || bench_die "could not parse rdkafka_performance output in $d/out"
      ;;
  esac
  read -r _ cpu_u cpu_s <"$d/times"
  # shellcheck disable=SC2086  # $figs is a list of KEY=VALUE words
  bench_row "$rows" part=a test="produce_$mode" tool="$tool" round="$round" target_rate="$r" \
    client_cpu_s="$(awk -v u="$cpu_u" -v s="$cpu_s" 'BEGIN { print u + s }')" $figs
  bench_note "  (a) produce $mode round $round $(printf '%-24s' "$tool") $(grep -o 'produce_records_per_sec=[0-9.]*' <<<"$figs" | cut -d= -f2 | xargs printf '%.0f') records/s"
}

consume_run() {
  local tool=$1 round=$2 topic=$3
  seq_no=$((seq_no + 1))
  local d="$work/run-$seq_no" group="pa-consume-$tool-$round-$RANDOM"
  mkdir -p "$d"
  if [[ $tool == kbench ]]; then
    bench_run "$limit" "$d/out" "$d/err" "$d/times" -- "$kbench" consume --bootstrap-server "$kafka" \
      --topic "$topic" --num-records "$records" --group "$group" --timeout 30000 \
      --reporting-interval 60s --output-dir "$d/results"
  else
    bench_run "$limit" "$d/out" "$d/err" "$d/times" -- scripts/java-tools.sh consumer-perf \
      --bootstrap-server "$kafka" --topic "$topic" --num-records "$records" --group "$group" \
      --timeout 30000
  fi
  local figs
  figs=$(bench_consumer_line_figures "$d/out") || bench_die "no consumer-perf line in $d/out"
  [[ $figs == records=$records\ * ]] || bench_die "$tool consumed fewer than $records records: $figs"
  read -r _ cpu_u cpu_s <"$d/times"
  # shellcheck disable=SC2086  # $figs is a list of KEY=VALUE words
  bench_row "$rows" part=a test=consume tool="$tool" round="$round" \
    client_cpu_s="$(awk -v u="$cpu_u" -v s="$cpu_s" 'BEGIN { print u + s }')" $figs
  bench_note "  (a) consume round $round $(printf '%-24s' "$tool") $figs"
}

# (b): one kbench run against BROKER (bundled|kafka); KIND is produce, consume or e2e.
broker_run() {
  local broker=$1 kind=$2 round=$3 arg=${4:-}
  local addr=$kafka pid=$kafka_pid
  [[ $broker == bundled ]] && { addr=$bundled; pid=$bundled_pid; }
  seq_no=$((seq_no + 1))
  local d="$work/run-$seq_no" topic="pb-$kind-$broker-$round"
  mkdir -p "$d"
  local before after
  before=$(bench_cpu_seconds "$pid")
  case $kind in
    produce)
      # shellcheck disable=SC2046
      bench_run "$limit" "$d/out" "$d/err" "$d/times" -- "$kbench" produce --bootstrap-server "$addr" \
        --topic "$topic" --partitions "$partitions" --num-records "$records" --record-size "$size" \
        --throughput -1 $(kbench_produce_args) --output-dir "$d/results" ;;
    consume)
      topic=$arg
      bench_run "$limit" "$d/out" "$d/err" "$d/times" -- "$kbench" consume --bootstrap-server "$addr" \
        --topic "$topic" --num-records "$records" --group "pb-$broker-$round-$RANDOM" \
        --timeout 30000 --reporting-interval 60s --output-dir "$d/results" ;;
    e2e)
      # shellcheck disable=SC2046
      BENCH_ALLOW_CHECK_FAILURE=1 bench_run "$((limit + e2e_duration * 2))" "$d/out" "$d/err" "$d/times" -- "$kbench" e2e \
        --bootstrap-server "$addr" --topic "$topic" --partitions "$partitions" \
        --record-size "$size" --throughput "$arg" --duration "${e2e_duration}s" --warmup 3s \
        --consumers 1 --group "pb-e2e-$broker-$round-$RANDOM" $(kbench_produce_args) \
        --output-dir "$d/results" ;;
  esac
  after=$(bench_cpu_seconds "$pid")
  local figs more=""
  figs=$(bench_kbench_figures "$d/results")
  if [[ $kind == consume ]]; then
    more=$(bench_consumer_line_figures "$d/out" | sed 's/\<records_per_sec=/line_records_per_sec=/')
  fi
  read -r _ cpu_u cpu_s <"$d/times"
  # shellcheck disable=SC2086  # $figs and $more are lists of KEY=VALUE words
  bench_row "$rows" part=b test="$kind" tool="$broker" round="$round" target_rate="${arg:--1}" \
    broker_cpu_s="$(awk -v a="$after" -v b="$before" 'BEGIN { print a - b }')" \
    client_cpu_s="$(awk -v u="$cpu_u" -v s="$cpu_s" 'BEGIN { print u + s }')" $figs $more
  bench_note "  (b) $kind round $round $(printf '%-8s' "$broker") $(tr ' ' '\n' <<<"$figs $more" | grep -E '^(produce_records_per_sec|consume_records_per_sec|fetch_records_per_sec|e2e_p99_us)=' | xargs) broker cpu $(awk -v a="$after" -v b="$before" 'BEGIN { printf "%.2f", a - b }') s"
}

median_of() { # median_of PART TEST TOOL FIELD
  python3 - "$rows" "$@" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
v = [r[sys.argv[5]] for r in rows if r["part"] == sys.argv[2] and r["test"] == sys.argv[3] and r["tool"] == sys.argv[4]]
print(int(statistics.median(v)))
PY
}

started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
t0=$SECONDS
# Untimed: warms Kafka's JVM (JIT, page cache) so the first measured run is not penalized.
bench_note "warm-up: one untimed kbench produce of $records records on each broker"
for addr in "$kafka" "$bundled"; do
  seq_no=$((seq_no + 1))
  mkdir -p "$work/run-$seq_no"
  # shellcheck disable=SC2046
  bench_run "$limit" "$work/run-$seq_no/out" "$work/run-$seq_no/err" "$work/run-$seq_no/times" -- \
    "$kbench" produce --bootstrap-server "$addr" --topic warmup --partitions "$partitions" \
    --num-records "$records" --record-size "$size" --throughput -1 $(kbench_produce_args) --no-results
done
bench_note "(a) produce, closed model: $rounds rounds x 4 runs of $records x $size B"
for round in $(seq "$rounds"); do
  for tool in $(bench_rotate "$((round - 1))" kbench kafka-producer-perf-test rdkafka_performance rdkafka_performance-l); do
    produce_run "$tool" max "$round" "$records"
  done
done
if [[ -z $rate ]]; then
  lowest=$(for t in kbench kafka-producer-perf-test rdkafka_performance; do median_of a produce_max "$t" produce_records_per_sec; done | sort -n | head -1)
  rate=$((lowest / 2))
fi
fixed_records=$((rate * fixed_seconds))
bench_note "(a) produce at a fixed $rate records/s: $rounds rounds x 3 runs of $fixed_records records"
for round in $(seq "$rounds"); do
  for tool in $(bench_rotate "$((round - 1))" kbench kafka-producer-perf-test rdkafka_performance-l); do
    produce_run "$tool" fixed "$round" "$fixed_records" "$rate"
  done
done
bench_note "(a) consume: $rounds rounds x 2 runs of $records records from pa-max-kbench-1, fresh groups"
for round in $(seq "$rounds"); do
  for tool in $(bench_rotate "$((round - 1))" kbench kafka-consumer-perf-test); do
    consume_run "$tool" "$round" pa-max-kbench-1
  done
done

bench_note "(b) brokers, kbench produce closed model: $rounds rounds x 2 runs"
for round in $(seq "$rounds"); do
  for broker in $(bench_rotate "$((round - 1))" bundled kafka); do broker_run "$broker" produce "$round"; done
done
bench_note "(b) brokers, kbench consume: $rounds rounds x 2 runs"
for round in $(seq "$rounds"); do
  for broker in $(bench_rotate "$((round - 1))" bundled kafka); do broker_run "$broker" consume "$round" "pb-produce-$broker-1"; done
done
if [[ -z $e2e_rate ]]; then
  lowest=$(for b in bundled kafka; do median_of b produce "$b" produce_records_per_sec; done | sort -n | head -1)
  e2e_rate=$((lowest / 2))
fi
bench_note "(b) brokers, kbench e2e at $e2e_rate records/s for ${e2e_duration}s: $rounds rounds x 2 runs"
for round in $(seq "$rounds"); do
  for broker in $(bench_rotate "$((round - 1))" bundled kafka); do broker_run "$broker" e2e "$round" "$e2e_rate"; done
done
elapsed=$((SECONDS - t0))

kafka_version=$(scripts/kafka.sh env | sed -n 's/^KBENCH_KAFKA_VERSION=//p')
python3 - "$rows" "$json_out" <<PY
import json, os, platform, statistics, subprocess, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
settings = dict(rounds=$rounds, records=$records, record_size_bytes=$size, partitions=$partitions,
    acks="$acks", linger_ms=$linger, batch_size_bytes=$batch, client_buffer_bytes=$buffer_bytes,
    compression="none", idempotence=False, keys="null", fixed_rate_per_sec=$rate,
    fixed_rate_records=$fixed_records, e2e_rate_per_sec=$e2e_rate, e2e_duration_s=$e2e_duration,
    e2e_warmup_s=3, apache_kafka="$kafka_version", bundled_broker_flush="none (default)")
mib = $size / 1048576.0
def sel(part, test, tool):
    return [r for r in rows if r["part"] == part and r["test"] == test and r["tool"] == tool]
def med(part, test, tool, field):
    v = [r[field] for r in sel(part, test, tool) if field in r]
    return statistics.median(v) if v else None
def runs(part, test, tool, field):
    return [r.get(field) for r in sel(part, test, tool)]
def f0(x): return "–" if x is None else f"{x:,.0f}"
def f2(x): return "–" if x is None else f"{x:.2f}"
def ms(us): return "–" if us is None else f"{us / 1000:.1f}"
def ratio(a, b): return None if a is None or not b else a / b
out = {"schema": "kbench-compare-peers/1", "started_at": "$started", "elapsed_s": $elapsed,
       "machine": {"logical_cpus": os.cpu_count(), "kernel": platform.release(),
                   "cpu_model": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?"),
                   "note": "shared with other engineers compiling; measurements are noisy"},
       "settings": settings, "results": {}, "runs": rows}
res = out["results"]
P = print
P(f"### (a) Load generators on Apache Kafka {settings['apache_kafka']}: {settings['records']:,} records of {settings['record_size_bytes']} B, acks={settings['acks']}, linger.ms={settings['linger_ms']}, batch.size={settings['batch_size_bytes']}, {settings['partitions']} partitions; medians of {settings['rounds']} rounds")
P()
P("Produce, closed model (as fast as each tool accepts); latencies are as each tool reports them (queueing in the client included):")
P()
P("| tool | records/s | MB/s | vs kbench | p50 ms | p99 ms | p99.9 ms | client CPU s |")
P("|---|---:|---:|---:|---:|---:|---:|---:|")
kb = med("a", "produce_max", "kbench", "produce_records_per_sec")
res["produce_max"] = {}
for tool in ("kbench", "kafka-producer-perf-test", "rdkafka_performance", "rdkafka_performance-l"):
    r = med("a", "produce_max", tool, "produce_records_per_sec")
    m = med("a", "produce_max", tool, "produce_mb_per_sec")
    cpu = med("a", "produce_max", tool, "client_cpu_s")
    if tool == "kafka-producer-perf-test":
        p = [med("a", "produce_max", tool, k) for k in ("p50_ms", "p99_ms", "p999_ms")]
        ps = [f0(x) for x in p]
    elif tool == "rdkafka_performance":
        p, ps = [None] * 3, ["(no -l)"] * 3
    else:
        p = [med("a", "produce_max", tool, k) for k in ("lat_p50_us", "lat_p99_us", "lat_p999_us")]
        ps = [ms(x) for x in p]
    label = {"rdkafka_performance-l": "rdkafka_performance -l"}.get(tool, tool)
    P(f"| {label} | {f0(r)} | {f2(m)} | {f2(ratio(r, kb))} | {ps[0]} | {ps[1]} | {ps[2]} | {f2(cpu)} |")
    res["produce_max"][tool] = {"median_records_per_sec": r, "median_mb_per_sec": m, "ratio_to_kbench": ratio(r, kb),
        "median_client_cpu_s": cpu, "runs_records_per_sec": runs("a", "produce_max", tool, "produce_records_per_sec")}
lcost = ratio(med("a", "produce_max", "rdkafka_performance-l", "produce_records_per_sec"), med("a", "produce_max", "rdkafka_performance", "produce_records_per_sec"))
res["rdkafka_performance_l_throughput_ratio"] = lcost
P()
P(f"rdkafka_performance with -l reaches {f2(lcost)}x the records/s of the plain run (latency mode copies each payload and writes one line per record to a file).")
P()
P(f"Produce at a fixed {settings['fixed_rate_per_sec']:,} records/s ({settings['fixed_rate_records']:,} records); kbench corrected = from the intended send time, service = from the send call:")
P()
P("| tool | achieved records/s | p50 ms | p99 ms | p99.9 ms | resolution |")
P("|---|---:|---:|---:|---:|---|")
res["produce_fixed"] = {}
ach = med("a", "produce_fixed", "kbench", "produce_records_per_sec")
for label, key in (("kbench (corrected)", "lat"), ("kbench (service)", "svc")):
    p = [med("a", "produce_fixed", "kbench", f"{key}_{q}_us") for q in ("p50", "p99", "p999")]
    P(f"| {label} | {f0(ach)} | {ms(p[0])} | {ms(p[1])} | {ms(p[2])} | every record, HDR, µs |")
    res["produce_fixed"][label] = {"achieved_records_per_sec": ach, "p50_us": p[0], "p99_us": p[1], "p999_us": p[2]}
t = "kafka-producer-perf-test"
p = [med("a", "produce_fixed", t, f"{q}_ms") for q in ("p50", "p99", "p999")]
a = med("a", "produce_fixed", t, "produce_records_per_sec")
P(f"| {t} | {f0(a)} | {f0(p[0])} | {f0(p[1])} | {f0(p[2])} | ≤ 500k sampled values, integer ms |")
res["produce_fixed"][t] = {"achieved_records_per_sec": a, "p50_ms": p[0], "p95_ms": med("a", "produce_fixed", t, "p95_ms"), "p99_ms": p[1], "p999_ms": p[2]}
t = "rdkafka_performance-l"
p = [med("a", "produce_fixed", t, f"lat_{q}_us") for q in ("p50", "p99", "p999")]
a = med("a", "produce_fixed", t, "produce_records_per_sec")
P(f"| rdkafka_performance -l -r | {f0(a)} | {ms(p[0])} | {ms(p[1])} | {ms(p[2])} | every record (-A file), µs |")
res["produce_fixed"][t] = {"achieved_records_per_sec": a, "p50_us": p[0], "p99_us": p[1], "p999_us": p[2]}
P()
P(f"Consume {settings['records']:,} records from one pre-filled topic, fresh group each run (Kafka's consumer line from both tools; fetch = without the group join):")
P()
P("| tool | records/s incl. join | fetch records/s | fetch vs kbench | group join ms |")
P("|---|---:|---:|---:|---:|")
res["consume"] = {}
kbf = med("a", "consume", "kbench", "fetch_records_per_sec")
for tool in ("kbench", "kafka-consumer-perf-test"):
    r, f, j = (med("a", "consume", tool, k) for k in ("records_per_sec", "fetch_records_per_sec", "rebalance_ms"))
    P(f"| {tool} | {f0(r)} | {f0(f)} | {f2(ratio(f, kbf))} | {f0(j)} |")
    res["consume"][tool] = {"median_records_per_sec": r, "median_fetch_records_per_sec": f, "fetch_ratio_to_kbench": ratio(f, kbf), "median_rebalance_ms": j,
        "runs_fetch_records_per_sec": runs("a", "consume", tool, "fetch_records_per_sec")}
P()
P(f"### (b) Brokers under the same kbench workload: the bundled broker (separate process, flush none, zero-copy) vs Apache Kafka {settings['apache_kafka']}; medians of {settings['rounds']} rounds")
P()
P("| metric | bundled broker | Apache Kafka | bundled / Kafka |")
P("|---|---:|---:|---:|")
res["brokers"] = {}
def line(label, key, bv, kv, fmt):
    P(f"| {label} | {fmt(bv)} | {fmt(kv)} | {f2(ratio(bv, kv))} |")
    res["brokers"][key] = {"bundled": bv, "kafka": kv, "ratio": ratio(bv, kv)}
def both(test, field): return med("b", test, "bundled", field), med("b", test, "kafka", field)
line("produce records/s (closed model)", "produce_records_per_sec", *both("produce", "produce_records_per_sec"), f0)
line("consume records/s (kbench summary, incl. join)", "consume_records_per_sec", *both("consume", "consume_records_per_sec"), f0)
line("consume fetch records/s (without join)", "consume_fetch_records_per_sec", *both("consume", "fetch_records_per_sec"), f0)
for q, n in (("p50", "p50"), ("p99", "p99"), ("p999", "p99.9")):
    line(f"e2e {n} ms at {settings['e2e_rate_per_sec']:,} records/s", f"e2e_{q}_us", *both("e2e", f"e2e_{q}_us"), lambda x: ms(x))
def cpu_per_mib(broker, test, cpu_field):
    v = []
    for r in sel("b", test, broker):
        n = r.get("produce_records") if test != "consume" else r.get("consume_records")
        if n:
            v.append(r[cpu_field] * 1000 / (n * mib))
    return statistics.median(v) if v else None
for test, what in (("produce", "produced"), ("consume", "consumed"), ("e2e", "produced (and consumed)")):
    line(f"broker CPU ms per MiB {what}", f"broker_cpu_ms_per_mib_{test}", cpu_per_mib("bundled", test, "broker_cpu_s"), cpu_per_mib("kafka", test, "broker_cpu_s"), f2)
for test in ("produce", "consume"):
    line(f"kbench client CPU ms per MiB ({test})", f"client_cpu_ms_per_mib_{test}", cpu_per_mib("bundled", test, "client_cpu_s"), cpu_per_mib("kafka", test, "client_cpu_s"), f2)
lost = sum(r.get("lost", 0) for r in rows if r["part"] == "b" and r["test"] == "e2e")
res["brokers"]["e2e_lost_records"] = lost
P()
P(f"e2e runs: {lost} lost records. Elapsed {$elapsed} s.")
if sys.argv[2]:
    with open(sys.argv[2], "w") as fh:
        json.dump(out, fh, indent=2)
        fh.write("\n")
    print(f"\nwrote {sys.argv[2]}", file=sys.stderr)
PY
