#!/usr/bin/env bash
# The bundled 3-node cluster (`kbench cluster --nodes 3`) against a 3-node Apache Kafka
# (`scripts/kafka.sh --nodes 3`, KRaft, one JVM per node), both on loopback, with the same
# kbench workloads, alternating which goes first each round; prints per-round figures, the
# medians and their ratios. A benchmark, not a test: run it on a quiet machine.
#
# Measured per system and round:
#   produce   records/s of `kbench produce` at full speed, RF 3, acks=all, min.insync.replicas 2
#   cpu/MiB   CPU seconds of the node processes (utime+stime from /proc) per MiB produced
#   e2e p99   end-to-end p99 (ms) of `kbench e2e` at a fixed rate, RF 3, acks=all
#   failover  time (ms) from a SIGKILL of a partition's leader to the first acknowledgement of a
#             record sent after it (kbench's time_to_first_ack_ms), the same session timeout on
#             both sides (broker.session.timeout.ms 6000, heartbeat 1000, replica.lag 5000:
#             scripts/kafka.sh's cluster settings)
#
# Usage: scripts/bench-cluster-vs-kafka.sh [--rounds N] [--record-size B] [--seconds S]
#          [--e2e-rate R] [--json FILE]
# Both clusters stay up for the whole run; the idle one costs the other a little CPU.
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=3 size=1024 seconds=15 e2e_rate=5000 json_out=""
while (($#)); do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --record-size) size=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --e2e-rate) e2e_rate=$2; shift 2 ;;
    --json) json_out=$2; shift 2 ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done

echo "building kbench (release)..." >&2
cargo build --release --locked -q
kbench=$PWD/target/release/kbench
work=$(mktemp -d)
kafka_state="$work/kafka"
cluster_pid=""
cleanup() {
  if [ -n "$cluster_pid" ]; then
    kill -INT "$cluster_pid" 2>/dev/null || true
    wait "$cluster_pid" 2>/dev/null || true
  fi
  scripts/kafka.sh --nodes 3 --state "$kafka_state" stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

# The bundled cluster, with Kafka's failover settings from scripts/lib/kafka-cluster.sh.
"$kbench" cluster --nodes 3 --data-dir "$work/bundled" -- \
  --broker-session-timeout-ms 6000 --broker-heartbeat-interval-ms 1000 \
  --replica-lag-time-max-ms 5000 --min-insync-replicas 2 \
  >"$work/bundled.out" 2>"$work/bundled.err" &
cluster_pid=$!
for _ in $(seq 600); do [ -s "$work/bundled.out" ] && break; sleep 0.1; done
[ -s "$work/bundled.out" ] || { echo "the bundled cluster did not start:" >&2; cat "$work/bundled.err" >&2; exit 2; }
bundled_file="$work/bundled/cluster.json"

echo "starting 3-node Apache Kafka..." >&2
scripts/kafka.sh --nodes 3 --state "$kafka_state" start >&2
kafka_file="$kafka_state/cluster.json"
[ -f "$kafka_file" ] || kafka_file=$(find "$kafka_state" -name cluster.json | head -1)

bootstrap_of() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["bootstrap"])' "$1"; }
pids_of() { python3 -c 'import json,sys; print(" ".join(str(n["pid"]) for n in json.load(open(sys.argv[1]))["nodes"]))' "$1"; }
# CPU seconds (utime + stime) of the given pids, from /proc/PID/stat fields 14 and 15.
cpu_of() {
  local total=0 pid t
  for pid in "$@"; do
    t=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$pid/stat" 2>/dev/null || echo 0)
    total=$((total + t))
  done
  python3 -c "import os,sys; print(int(sys.argv[1]) / os.sysconf('SC_CLK_TCK'))" "$total"
}
summary() { python3 - "$1" "$2" <<'EOF'
import glob, json, sys
s = json.load(open(glob.glob(sys.argv[1] + "/*/summary.json")[0]))
p = s["phases"][-1]
what = sys.argv[2]
if what == "produce":
    print(p["produce"]["records_per_sec"], p["produce"]["bytes"])
elif what == "e2e":
    print(p["consume"]["e2e_latency_us"]["p99"] / 1000.0)
else:
    print(s["faults"][0]["produce"]["time_to_first_ack_ms"])
EOF
}

results="$work/results.tsv"
run_round() { # system cluster_file round
  local sys=$1 file=$2 r=$3 boot pids dir c0 c1 rate bytes p99 ttfa
  boot=$(bootstrap_of "$file")
  pids=$(pids_of "$file")
  dir="$work/$sys-produce-$r"
  c0=$(cpu_of $pids)
  "$kbench" produce --bootstrap-server "$boot" --topic "p-$sys-$r" --replication-factor 3 --partitions 3 \
    --acks all --record-size "$size" --throughput -1 --duration "${seconds}s" \
    --output-dir "$dir" --reporting-interval 60s >/dev/null 2>"$dir.err" || true
  c1=$(cpu_of $pids)
  read -r rate bytes < <(summary "$dir" produce)
  cpu_per_mib=$(python3 -c "import sys; print((float(sys.argv[2])-float(sys.argv[1]))/(float(sys.argv[3])/1048576))" "$c0" "$c1" "$bytes")
  dir="$work/$sys-e2e-$r"
  "$kbench" e2e --bootstrap-server "$boot" --topic "e-$sys-$r" --replication-factor 3 --acks all \
    --record-size "$size" --throughput "$e2e_rate" --duration "${seconds}s" \
    --output-dir "$dir" --reporting-interval 60s >/dev/null 2>"$dir.err" || true
  p99=$(summary "$dir" e2e)
  dir="$work/$sys-failover-$r"
  "$kbench" produce --bootstrap-server "$boot" --cluster-file "$file" --topic "f-$sys-$r" \
    --replication-factor 3 --acks all --idempotence --record-size 100 --throughput 1000 \
    --duration 25s --fault "at=6s kill leader-of:f-$sys-$r/0 for=8s" \
    --output-dir "$dir" --reporting-interval 1s >/dev/null 2>"$dir.err" || true
  ttfa=$(summary "$dir" failover)
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$sys" "$r" "$rate" "$cpu_per_mib" "$p99" "$ttfa" | tee -a "$results" >&2
}

printf 'system\tround\tproduce_rps\tcpu_s_per_mib\te2e_p99_ms\tfailover_first_ack_ms\n' >&2
for r in $(seq "$rounds"); do
  if ((r % 2)); then
    run_round bundled "$bundled_file" "$r"; run_round kafka "$kafka_file" "$r"
  else
    run_round kafka "$kafka_file" "$r"; run_round bundled "$bundled_file" "$r"
  fi
done

python3 - "$results" "$json_out" <<'EOF'
import json, statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
cols = ["produce_rps", "cpu_s_per_mib", "e2e_p99_ms", "failover_first_ack_ms"]
med = {}
for sysname in ("bundled", "kafka"):
    mine = [r for r in rows if r[0] == sysname]
    med[sysname] = {c: statistics.median(float(r[i + 2]) for r in mine) for i, c in enumerate(cols)}
print("median over %d rounds        bundled      kafka   bundled/kafka" % len([r for r in rows if r[0] == "bundled"]))
for c in cols:
    b, k = med["bundled"][c], med["kafka"][c]
    print("%-26s %10.3f %10.3f %8.2fx" % (c, b, k, b / k if k else float("nan")))
if sys.argv[2]:
    json.dump({"rows": rows, "medians": med}, open(sys.argv[2], "w"), indent=2)
EOF
