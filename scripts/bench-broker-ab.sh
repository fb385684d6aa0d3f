#!/usr/bin/env bash
# A/B of two kbench builds' bundled broker (`kbench broker`, a separate process) under one
# kbench client: produce then consume 500k x 1 KiB, acks=1, 4 partitions, fresh data dir per
# round, OLD and NEW alternating; prints each round's produce records/s (Kafka's final line)
# and consume fetch.nMsg.sec. For "the broker must not get slower" checks between builds:
#   scripts/bench-broker-ab.sh OLD_KBENCH NEW_KBENCH CLIENT_KBENCH [ROUNDS]
set -euo pipefail
old=$1 new=$2 client=$3 rounds=${4:-3}
for r in $(seq 1 "$rounds"); do
  for side in old new; do
    bin=${!side}; d=$(mktemp -d); if [ "$side" = new ]; then off=1; else off=0; fi; port=$((19700 + r * 2 + off))
    "$bin" broker --listen 127.0.0.1:$port --data-dir "$d" --num-partitions 4 >/dev/null 2>&1 & bp=$!
    for i in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
    out=$("$client" produce --bootstrap-server 127.0.0.1:$port --topic ab --partitions 4 --num-records 500000 --record-size 1024 --throughput -1 --acks 1 --linger-ms 5 --batch-size 1000000 --no-results 2>/dev/null | grep -E '^500000 records sent.*50th' || true)
    rate=$(echo "$out" | sed -E 's/^[0-9]+ records sent, ([0-9.]+) records\/sec.*/\1/')
    cons=$("$client" consume --bootstrap-server 127.0.0.1:$port --topic ab --num-records 500000 --no-results 2>/dev/null | grep -E '^[0-9]{4}-' | tail -1 | awk -F', ' '{print $10}' || true)
    echo "round $r $side produce_rps=$rate consume_rps=$cons"
    kill "$bp"; wait "$bp" 2>/dev/null || true; rm -rf "$d"
  done
done
