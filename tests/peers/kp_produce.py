"""Produce N records with kafka-python (pure Python, independent of librdkafka).

usage: kp_produce.py BOOTSTRAP TOPIC N ACKS PREFIX
Prints "acked K" (K records whose send future resolved without error) and exits 0.
"""
import sys

from kafka import KafkaProducer

boot, topic, n, acks, prefix = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
acks = "all" if acks == "all" else int(acks)
p = KafkaProducer(bootstrap_servers=boot, acks=acks, linger_ms=5, request_timeout_ms=20000)
futures = [p.send(topic, key=b"k%d" % i, value=("%s-%06d" % (prefix, i)).encode()) for i in range(n)]
p.flush(timeout=30)
acked = 0
for f in futures:
    try:
        f.get(timeout=30)
        acked += 1
    except Exception as e:  # report, do not hide: the test compares counts
        print("error", repr(e), file=sys.stderr)
p.close(timeout=10)
print("acked", acked, flush=True)
