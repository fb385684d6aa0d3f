#!/usr/bin/env bash
# The bundled broker's benchmark (issue 3), measured with kbench on this machine; ratios come
# from one run, contenders alternate round by round (the order rotates), medians are reported.
# A benchmark, not a test: numbers from a shared machine are noisy.
#
#   produce  kbench produce, 1 KiB records, acks=1, 4 partitions, --throughput -1, against the
#            bundled broker (a separate `kbench broker` process, so its CPU can be read from
#            /proc/PID/stat) and against librdkafka's mock cluster (`--embedded mock`, in-memory,
#            in kbench's own process: that figure is client + mock, the ceiling of the client).
#   consume  kbench consume of a pre-filled topic with fresh groups, from two broker processes
#            that differ only in --zero-copy true|false (each pre-filled by the same produce).
#   e2e      kbench e2e at half the median produce rate of the bundled broker (or --e2e-rate):
#            end-to-end p50/p99/p99.9 on the bundled broker; the mock cluster at the same rate as
#            a reference.
# The mock cluster lives inside one kbench process, so it cannot be pre-filled for a separate
# consume run, and its closed-model e2e consumer does not keep up (records are reported lost):
# the mock gives the produce ceiling only. See bench/README.md.
#
# Usage: scripts/bench-broker.sh [--rounds N] [--records N] [--record-size B] [--partitions N]
#          [--e2e-rate R] [--e2e-duration S] [--json FILE] [--keep-work]
# Defaults: 3 rounds, 1000000 records of 1024 B, 4 partitions, e2e 15 s (+3 s warm-up); about
# 5 minutes. Quick check: scripts/bench-broker.sh --rounds 1 --records 100000 --e2e-duration 3
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/bench-common.sh
source scripts/lib/bench-common.sh

rounds=3 records=1000000 size=1024 partitions=4 e2e_rate="" e2e_duration=15 json_out="" keep=0
acks=1 linger=5 batch=65536
while (($#)); do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --records) records=$2; shift 2 ;;
    --record-size) size=$2; shift 2 ;;
    --partitions) partitions=$2; shift 2 ;;
    --e2e-rate) e2e_rate=$2; shift 2 ;;
    --e2e-duration) e2e_duration=$2; shift 2 ;;
    --json) json_out=$2; shift 2 ;;
    --keep-work) keep=1; shift ;;
    -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
    *) bench_die "unknown option '$1' (see --help)" ;;
  esac
done
for opt in rounds records size partitions e2e_duration; do
  bench_need_int "--${opt//_/-}" "${!opt}"
done
[[ -z $e2e_rate ]] || bench_need_int --e2e-rate "$e2e_rate"
((size >= 64)) || bench_die "--record-size must be at least 64 (kbench's stamp is 36 bytes)"
[[ -z $json_out ]] || mkdir -p "$(dirname "$json_out")"

bench_note "building kbench (release)..."
cargo build --release --locked -q
kbench=target/release/kbench

work=$(mktemp -d "${TMPDIR:-/tmp}/kbench-bench-broker.XXXXXX")
pid_zc="" pid_rw=""
cleanup() {
  local rc=$?
  bench_stop_pid "$pid_zc"
  bench_stop_pid "$pid_rw"
  if ((keep)); then bench_note "work dir kept: $work"; else rm -rf "$work"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Each round writes records x size per broker; retention keeps the disk bounded but never trims
# the pre-filled topic (a partition may hold twice what one run writes to it).
retention=$(bench_retention_bytes "$records" "$size" "$partitions")
limit=$((180 + records * size / 2000000))
common_broker=(--num-partitions "$partitions" --group-initial-rebalance-delay-ms 0
  --segment-bytes 67108864 --retention-bytes "$retention")
bench_start_bundled_broker "$kbench" "$work/zc" "$work/zc.log" --zero-copy true "${common_broker[@]}"
pid_zc=$BENCH_BROKER_PID addr_zc=$BENCH_BROKER_ADDR
bench_start_bundled_broker "$kbench" "$work/rw" "$work/rw.log" --zero-copy false "${common_broker[@]}"
pid_rw=$BENCH_BROKER_PID addr_rw=$BENCH_BROKER_ADDR
bench_note "bundled brokers: zero-copy $addr_zc (pid $pid_zc), read+write $addr_rw (pid $pid_rw)"

rows=$work/rows.jsonl
: >"$rows"
seq_no=0
produce_args=(--acks "$acks" --linger-ms "$linger" --batch-size "$batch" --reporting-interval 60s)

# run TEST TARGET ROUND [RATE]: TARGET is zc, rw (the two broker processes) or mock.
run() {
  local test=$1 target=$2 round=$3 r=${4:-}
  seq_no=$((seq_no + 1))
  local d="$work/run-$seq_no" pid="" before=0 after=0
  local -a where
  case $target in
    zc) where=(--bootstrap-server "$addr_zc"); pid=$pid_zc ;;
    rw) where=(--bootstrap-server "$addr_rw"); pid=$pid_rw ;;
    mock) where=(--embedded mock) ;;
  esac
  mkdir -p "$d"
  [[ -z $pid ]] || before=$(bench_cpu_seconds "$pid")
  case $test in
    prefill|produce)
      bench_run "$limit" "$d/out" "$d/err" "$d/times" -- "$kbench" produce "${where[@]}" \
        --topic "bb-$test-$round" --partitions "$partitions" --num-records "$records" \
        --record-size "$size" --throughput -1 "${produce_args[@]}" --output-dir "$d/results" ;;
    consume)
      bench_run "$limit" "$d/out" "$d/err" "$d/times" -- "$kbench" consume "${where[@]}" \
        --topic bb-prefill-0 --num-records "$records" --group "bb-$target-$round-$RANDOM" \
        --timeout 30000 --reporting-interval 60s --output-dir "$d/results" ;;
    e2e)
      BENCH_ALLOW_CHECK_FAILURE=1 bench_run "$((limit + e2e_duration * 2))" "$d/out" "$d/err" "$d/times" -- "$kbench" e2e \
        "${where[@]}" --topic "bb-e2e-$round" --partitions "$partitions" --record-size "$size" \
        --throughput "$r" --duration "${e2e_duration}s" --warmup 3s --consumers 1 \
        --group "bb-e2e-$target-$round-$RANDOM" "${produce_args[@]}" --output-dir "$d/results" ;;
  esac
  [[ -z $pid ]] || after=$(bench_cpu_seconds "$pid")
  [[ $test == prefill ]] && return 0
  local figs extra=""
  figs=$(bench_kbench_figures "$d/results")
  [[ $test == consume ]] && extra=$(bench_consumer_line_figures "$d/out" | sed 's/\<records_per_sec=/line_records_per_sec=/')
  read -r _ cpu_u cpu_s <"$d/times"
  local label=$target
  [[ $test != consume && $target != mock ]] && label=bundled
  # shellcheck disable=SC2086  # $figs and $extra are lists of KEY=VALUE words
  bench_row "$rows" test="$test" tool="$label" round="$round" target_rate="${r:--1}" \
    broker_cpu_s="$(awk -v a="$after" -v b="$before" 'BEGIN { print a - b }')" \
    client_cpu_s="$(awk -v u="$cpu_u" -v s="$cpu_s" 'BEGIN { print u + s }')" $figs $extra
  bench_note "  $test round $round $(printf '%-8s' "$label") $(tr ' ' '\n' <<<"$figs $extra" | grep -E '^(produce_records_per_sec|consume_records_per_sec|fetch_records_per_sec|e2e_p99_us|lost)=' | xargs)"
}

median_of() { # median_of TEST TOOL FIELD
  python3 - "$rows" "$@" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print(int(statistics.median(r[sys.argv[4]] for r in rows if r["test"] == sys.argv[2] and r["tool"] == sys.argv[3])))
PY
}

started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
t0=$SECONDS
bench_note "pre-filling topic bb-prefill-0 on both broker processes ($records x $size B; also the warm-up)"
run prefill zc 0
run prefill rw 0
bench_note "produce: $rounds rounds, bundled broker vs mock cluster"
for round in $(seq "$rounds"); do
  for t in $(bench_rotate "$((round - 1))" zc mock); do run produce "$t" "$round"; done
done
bench_note "consume: $rounds rounds, --zero-copy true vs false"
for round in $(seq "$rounds"); do
  for t in $(bench_rotate "$((round - 1))" zc rw); do run consume "$t" "$round"; done
done
[[ -n $e2e_rate ]] || e2e_rate=$(($(median_of produce bundled produce_records_per_sec) / 2))
bench_note "e2e at $e2e_rate records/s for ${e2e_duration}s: $rounds rounds, bundled broker vs mock cluster"
for round in $(seq "$rounds"); do
  for t in $(bench_rotate "$((round - 1))" zc mock); do run e2e "$t" "$round" "$e2e_rate"; done
done
elapsed=$((SECONDS - t0))

python3 - "$rows" "$json_out" <<PY
import json, os, platform, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
settings = dict(rounds=$rounds, records=$records, record_size_bytes=$size, partitions=$partitions,
    acks="$acks", linger_ms=$linger, batch_size_bytes=$batch, throughput="-1 (closed model)",
    e2e_rate_per_sec=$e2e_rate, e2e_duration_s=$e2e_duration, e2e_warmup_s=3, consumers=1,
    broker_flush="none (default)", broker_threads="2 (default)")
mib = $size / 1048576.0
def sel(test, tool): return [r for r in rows if r["test"] == test and r["tool"] == tool]
def med(test, tool, field):
    v = [r[field] for r in sel(test, tool) if field in r]
    return statistics.median(v) if v else None
def runs(test, tool, field): return [r.get(field) for r in sel(test, tool)]
def ratio(a, b): return None if a is None or not b else a / b
def f0(x): return "–" if x is None else f"{x:,.0f}"
def f2(x): return "–" if x is None else f"{x:.2f}"
def ms(us): return "–" if us is None else f"{us / 1000:.1f}"
def cpu_per_mib(test, tool):
    v = [r["broker_cpu_s"] * 1000 / (r.get("produce_records") or r.get("consume_records")) / mib for r in sel(test, tool) if (r.get("produce_records") or r.get("consume_records"))]
    return statistics.median(v) if v else None
out = {"schema": "kbench-bench-broker/1", "started_at": "$started", "elapsed_s": $elapsed,
       "machine": {"logical_cpus": os.cpu_count(), "kernel": platform.release(),
                   "cpu_model": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?"),
                   "note": "shared with other engineers compiling; measurements are noisy"},
       "settings": settings, "results": {}, "runs": rows}
res = out["results"]
P = print
P(f"### The bundled broker: {settings['records']:,} records of {settings['record_size_bytes']} B, acks={settings['acks']}, {settings['partitions']} partitions, linger.ms={settings['linger_ms']}, batch.size={settings['batch_size_bytes']}; medians of {settings['rounds']} rounds")
P()
P("| measurement | bundled broker | reference | ratio |")
P("|---|---:|---:|---:|")
def line(label, key, a, b, fmt, bl):
    P(f"| {label} | {fmt(a)} | {fmt(b)} ({bl}) | {f2(ratio(a, b))} |")
    res[key] = {"bundled": a, "reference": b, "reference_is": bl, "ratio": ratio(a, b)}
pb, pm = med("produce", "bundled", "produce_records_per_sec"), med("produce", "mock", "produce_records_per_sec")
line("produce records/s, closed model", "produce_records_per_sec", pb, pm, f0, "mock cluster, in-process")
line("produce MB/s", "produce_mb_per_sec", med("produce", "bundled", "produce_mb_per_sec"), med("produce", "mock", "produce_mb_per_sec"), f2, "mock cluster")
cz, cr = med("consume", "zc", "consume_records_per_sec"), med("consume", "rw", "consume_records_per_sec")
line("consume records/s, zero-copy (kbench summary, incl. join)", "consume_records_per_sec", cz, cr, f0, "--zero-copy false")
fz, fr = med("consume", "zc", "fetch_records_per_sec"), med("consume", "rw", "fetch_records_per_sec")
line("consume fetch records/s, zero-copy (without join)", "consume_fetch_records_per_sec", fz, fr, f0, "--zero-copy false")
line("broker CPU ms per MiB consumed, zero-copy", "broker_cpu_ms_per_mib_consume", cpu_per_mib("consume", "zc"), cpu_per_mib("consume", "rw"), f2, "--zero-copy false")
line("broker CPU ms per MiB produced", "broker_cpu_ms_per_mib_produce", cpu_per_mib("produce", "bundled"), None, f2, "–")
for q, n in (("p50", "p50"), ("p99", "p99"), ("p999", "p99.9")):
    line(f"e2e {n} ms at {settings['e2e_rate_per_sec']:,} records/s", f"e2e_{q}_us", med("e2e", "bundled", f"e2e_{q}_us"), med("e2e", "mock", f"e2e_{q}_us"), ms, "mock cluster")
line("e2e achieved records/s", "e2e_records_per_sec", med("e2e", "bundled", "produce_records_per_sec"), med("e2e", "mock", "produce_records_per_sec"), f0, "mock cluster")
lost = {t: sum(r.get("lost", 0) for r in sel("e2e", t)) for t in ("bundled", "mock")}
res["e2e_lost_records"] = lost
res["runs_produce_records_per_sec"] = {t: runs("produce", t, "produce_records_per_sec") for t in ("bundled", "mock")}
res["runs_consume_fetch_records_per_sec"] = {t: runs("consume", t, "fetch_records_per_sec") for t in ("zc", "rw")}
P()
P(f"e2e lost records: bundled {lost['bundled']}, mock {lost['mock']}. Elapsed {$elapsed} s.")
if sys.argv[2]:
    with open(sys.argv[2], "w") as fh:
        json.dump(out, fh, indent=2)
        fh.write("\n")
    print(f"\nwrote {sys.argv[2]}", file=sys.stderr)
PY
