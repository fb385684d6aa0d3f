//! Crash recovery: the broker *process* is SIGKILLed while a producer sends with acks=all and
//! `--flush messages:1`; after a restart every acknowledged record is there, and a torn tail
//! appended to a segment is truncated.

mod broker_support;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use broker_support::*;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientConfig, ClientContext};

#[derive(Clone, Default)]
struct Acked(Arc<Mutex<Vec<String>>>);
impl ClientContext for Acked {}
impl ProducerContext for Acked {
    type DeliveryOpaque = ();
    fn delivery(&self, r: &DeliveryResult<'_>, _: ()) {
        if let Ok(m) = r {
            let v = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
            self.0.lock().unwrap_or_else(|p| p.into_inner()).push(v);
        }
    }
}

#[test]
// The broker child is killed and waited for on every path (kill9 waits); clippy cannot see
// through the conditional kill inside the loop.
#[allow(clippy::zombie_processes)]
fn no_acknowledged_record_is_lost_when_the_broker_process_is_killed() {
    let data = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let extra = [
        "--flush",
        "messages:1",
        "--num-partitions",
        "2",
        "--group-initial-rebalance-delay-ms",
        "0",
    ];
    let mut broker = spawn_broker_process(port, data.path(), &extra);
    let boot = format!("127.0.0.1:{port}");

    let acked = Acked::default();
    let p: BaseProducer<Acked> = ClientConfig::new()
        .set("bootstrap.servers", &boot)
        .set("acks", "all")
        .set("linger.ms", "2")
        .set("message.timeout.ms", "4000")
        .set("enable.idempotence", "true")
        .create_with_context(acked.clone())
        .expect("producer");
    let start = Instant::now();
    let mut i = 0u64;
    let mut killed = false;
    while start.elapsed() < Duration::from_secs(4) {
        let v = format!("rec-{i:08}");
        if p.send(BaseRecord::to("crash").payload(v.as_bytes()).key("k"))
            .is_ok()
        {
            i += 1;
        }
        p.poll(Duration::from_micros(200));
        if !killed && start.elapsed() > Duration::from_millis(1500) {
            kill9(&mut broker);
            killed = true;
        }
    }
    if !killed {
        kill9(&mut broker);
    }
    let _ = p.flush(Duration::from_secs(6));
    drop(p);
    let acked: HashSet<String> = acked
        .0
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .cloned()
        .collect();
    assert!(
        acked.len() > 100,
        "some records were acknowledged before the kill ({})",
        acked.len()
    );

    // A torn write at the tail of partition 0's active segment.
    let seg_dir = data.path().join("crash-0");
    let mut segs: Vec<_> = std::fs::read_dir(&seg_dir)
        .expect("partition dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    segs.sort();
    let last = segs.last().expect("a segment").clone();
    let good_len = std::fs::metadata(&last).expect("segment").len();
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&last)
            .expect("open segment");
        f.write_all(&[
            0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 1, 0, 0xff, 0xff, 0xff, 0xff, 2, 1, 2, 3,
        ])
        .expect("torn tail");
    }

    // Killed when dropped, on every path (an assertion below may panic).
    let _broker = KillOnDrop(spawn_broker_process(port, data.path(), &extra));
    assert!(
        std::fs::metadata(&last).expect("segment").len() <= good_len,
        "torn tail truncated"
    );
    let want: Vec<String> = acked.iter().cloned().collect();
    let seen = consume_until(
        &boot,
        "crash",
        "g-crash",
        Duration::from_secs(20),
        &[],
        |seen, _| want.iter().all(|v| seen.contains_key(v)),
    );
    let missing: Vec<&String> = want
        .iter()
        .filter(|v| !seen.contains_key(*v))
        .take(5)
        .collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged records lost, e.g. {missing:?}",
        want.iter().filter(|v| !seen.contains_key(*v)).count()
    );
    let dups = seen.values().filter(|&&c| c > 1).count();
    assert_eq!(dups, 0, "duplicated records after recovery");
}
