# shellcheck shell=bash
# Sourced, not run: helpers shared by the benchmark scripts (compare-peers, bench-broker, bench-open-model-cpu).
#
# Processes: every broker these scripts start is recorded with its exact pid and stopped by that
# pid only (SIGTERM, then SIGKILL after a bounded wait). No negative pids, no kill-by-name.
# CPU: a process's CPU time is utime+stime from /proc/PID/stat (clock ticks), read around a run;
# a client's is the child's user+sys from /usr/bin/time.
# Run from the repository root, after `set -euo pipefail`.

bench_die() {
  echo "$(basename "$0"): error: $*" >&2
  exit 2
}

bench_note() {
  echo "$(basename "$0"): $*" >&2
}

# Rotates the words of a list by N: bench_rotate 1 a b c -> b c a (the order changes every round).
bench_rotate() {
  local n=$1
  shift
  local -a xs=("$@")
  local i
  for ((i = 0; i < ${#xs[@]}; i++)); do echo -n "${xs[$(((i + n) % ${#xs[@]}))]} "; done
}

# Positive integer check for an option value: bench_need_int --rounds "$rounds".
bench_need_int() {
  [[ $2 =~ ^[1-9][0-9]*$ ]] || bench_die "$1 wants a positive integer, got '$2'"
}

# CPU seconds (utime+stime) a live process has used so far, from /proc/PID/stat.
# Field 2 (comm) may hold spaces, so the fields are counted after its closing parenthesis.
bench_cpu_seconds() {
  local pid=$1 stat rest
  stat=$(cat "/proc/$pid/stat" 2>/dev/null) || bench_die "process $pid is gone (a broker died?)"
  rest=${stat##*) }
  # After ") ": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime
  awk -v hz="$(getconf CLK_TCK)" '{ printf "%.3f\n", ($12 + $13) / hz }' <<<"$rest"
}

# Starts `kbench broker` in the background on an ephemeral loopback port. Sets BENCH_BROKER_PID
# and BENCH_BROKER_ADDR. Extra arguments go to `kbench broker`.
#   bench_start_bundled_broker KBENCH DATA_DIR LOG [broker args...]
bench_start_bundled_broker() {
  local kbench=$1 data=$2 log=$3
  shift 3
  mkdir -p "$data"
  "$kbench" broker --listen 127.0.0.1:0 --data-dir "$data" "$@" </dev/null >/dev/null 2>"$log" &
  BENCH_BROKER_PID=$!
  BENCH_BROKER_ADDR=""
  local _
  for _ in $(seq 150); do
    BENCH_BROKER_ADDR=$(sed -n 's/.*listening on \([0-9.]*:[0-9]*\).*/\1/p' "$log" | head -1)
    [[ -n $BENCH_BROKER_ADDR ]] && return 0
    kill -0 "$BENCH_BROKER_PID" 2>/dev/null || break
    sleep 0.1
  done
  cat "$log" >&2
  bench_stop_pid "$BENCH_BROKER_PID"
  bench_die "the bundled broker did not print 'listening on' within 15 s (its log is above)"
}

# Stops a process this script started: SIGTERM, then SIGKILL after 20 s. Only a positive pid.
bench_stop_pid() {
  local pid=${1:-}
  [[ $pid =~ ^[1-9][0-9]*$ ]] || return 0
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  local _
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    sleep 0.2
  done
  echo "process $pid did not stop within 20 s of SIGTERM; sending SIGKILL" >&2
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# Runs a command with a time limit, its stdout to OUT and stderr to ERR, and writes the child's
# "wall_s user_s sys_s" to TIMES. Fails with the command's output when it fails or times out;
# with BENCH_ALLOW_CHECK_FAILURE=1, exit 1 (kbench: a check failed) is a warning instead.
#   bench_run LIMIT_S OUT ERR TIMES -- cmd args...
bench_run() {
  local limit=$1 out=$2 err=$3 times=$4
  shift 5
  local rc=0
  timeout --kill-after=10 "$limit" /usr/bin/time -o "$times" -f '%e %U %S' "$@" >"$out" 2>"$err" || rc=$?
  if ((rc == 1)) && [[ ${BENCH_ALLOW_CHECK_FAILURE:-0} == 1 ]]; then
    # kbench's exit 1: the run worked but a check failed (e.g. lost records); the caller
    # records the figures, so the result is reported rather than thrown away.
    echo "warning: a check failed in: $* ($(grep -m1 'check failed' "$err" || true))" >&2
    rc=0
  fi
  if ((rc != 0)); then
    echo "---- command: $*" >&2
    tail -n 20 "$out" >&2
    tail -n 20 "$err" >&2
    if ((rc == 124 || rc == 137)); then
      bench_die "the command above did not finish within ${limit}s"
    fi
    bench_die "the command above failed (exit $rc)"
  fi
  # /usr/bin/time may prefix a "Command exited with non-zero status" line; keep the last one.
  tail -n 1 "$times" >"$times.tmp" && mv "$times.tmp" "$times"
}

# Appends one JSON object (built from KEY=VALUE pairs; numeric-looking values become numbers) to
# the JSON-lines file ROWS.   bench_row ROWS key=value ...
bench_row() {
  local rows=$1
  shift
  python3 - "$@" >>"$rows" <<'PY'
import json, sys
row = {}
for kv in sys.argv[1:]:
    k, _, v = kv.partition("=")
    try:
        row[k] = int(v)
    except ValueError:
        try:
            row[k] = float(v)
        except ValueError:
            row[k] = v
print(json.dumps(row))
PY
}

# Prints the figures of a kbench run's summary.json (the one under DIR) as KEY=VALUE words:
# produce rate, MB/s and latencies, consume rate and e2e latencies, host CPU.
bench_kbench_figures() {
  python3 - "$1" <<'PY'
import glob, json, sys
paths = glob.glob(sys.argv[1] + "/*/summary.json")
if not paths:
    sys.exit(f"no summary.json under {sys.argv[1]}")
s = json.load(open(paths[0]))
ph = s["phases"][-1]
out = {"duration_s": ph["duration_sec"]}
p = ph.get("produce")
if p:
    out.update(produce_records=p["records"], produce_records_per_sec=p["records_per_sec"],
               produce_mb_per_sec=p["mb_per_sec"], produce_errors=p["errors"])
    for name, key in (("latency_us", "lat"), ("service_latency_us", "svc")):
        for q in ("p50", "p99", "p999"):
            out[f"{key}_{q}_us"] = p[name][q]
c = ph.get("consume")
if c:
    out.update(consume_records=c["records"], consume_records_per_sec=c["records_per_sec"])
    e = c.get("e2e_latency_us") or {}
    for q in ("p50", "p99", "p999"):
        if q in e:
            out[f"e2e_{q}_us"] = e[q]
    for k in ("lost", "duplicated", "reordered"):
        if k in c:
            out[k] = c[k]
h = ph.get("host") or {}
if h.get("samples"):
    out.update(host_cpu_pct_avg=h["cpu_pct_avg"], process_cpu_pct_avg=h["process_cpu_pct_avg"])
print(" ".join(f"{k}={v}" for k, v in out.items()))
PY
}

# Parses the data row under Kafka's consumer-perf header (kafka-consumer-perf-test prints it, and
# so does kbench consume) into KEY=VALUE words: records, records/s and fetch records/s.
bench_consumer_line_figures() {
  python3 - "$1" <<'PY'
import sys
lines = open(sys.argv[1]).read().splitlines()
for i, l in enumerate(lines):
    if l.startswith("start.time, end.time"):
        cols = [c.strip() for c in l.split(",")]
        vals = [v.strip() for v in lines[i + 1].split(",")]
        row = dict(zip(cols, vals))
        print(f"records={int(float(row['data.consumed.in.nMsg']))} records_per_sec={row['nMsg.sec']} "
              f"fetch_records_per_sec={row['fetch.nMsg.sec']} rebalance_ms={row['rebalance.time.ms']} "
              f"fetch_ms={row['fetch.time.ms']}")
        break
else:
    sys.exit(f"no consumer-perf header line in {sys.argv[1]}")
PY
}

# Per-partition retention for a benchmark broker: bounds the disk across many runs, but never
# trims a topic that is read back (a partition may hold twice what one run writes to it).
# Usage: bench_retention_bytes RECORDS SIZE PARTITIONS
bench_retention_bytes() {
  local part_bytes=$(($1 * $2 * 2 / $3))
  echo $((part_bytes > 268435456 ? part_bytes : 268435456))
}
