"""A kafka-python group member that prints what it gets, for the group tests.

usage: kp_consume.py BOOTSTRAP TOPIC GROUP SECONDS
Prints "assigned P,P,..." on every assignment and "msg PARTITION VALUE" per record; commits
after every poll; exits after SECONDS (or when killed — the tests SIGKILL one member).
"""
import sys
import time

from kafka import ConsumerRebalanceListener, KafkaConsumer

boot, topic, group, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])


class Listener(ConsumerRebalanceListener):
    def on_partitions_revoked(self, revoked):
        pass

    def on_partitions_assigned(self, assigned):
        print("assigned", ",".join(str(tp.partition) for tp in sorted(assigned)), flush=True)


c = KafkaConsumer(
    bootstrap_servers=boot,
    group_id=group,
    auto_offset_reset="earliest",
    enable_auto_commit=False,
    session_timeout_ms=6000,
    heartbeat_interval_ms=1000,
    max_poll_interval_ms=30000,
    fetch_max_wait_ms=100,
)
c.subscribe([topic], listener=Listener())
end = time.time() + seconds
while time.time() < end:
    batch = c.poll(timeout_ms=200)
    for tp, records in batch.items():
        for r in records:
            print("msg", tp.partition, r.value.decode(), flush=True)
    if batch:
        c.commit()
c.close()
print("done", flush=True)
