//! The bundled broker with kafka-python (pure Python, its own protocol code): produce with
//! acks 0/1/all, and consume in a group of three.

mod broker_support;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use broker_support::*;

fn python(args: &[&str]) -> std::process::Output {
    Command::new("python3")
        .args(args)
        .output()
        .expect("python3 runs")
}

#[test]
fn kafka_python_produces_with_acks_0_1_all() {
    if !require_peer(have_kafka_python(), "python3 with kafka-python") {
        return;
    }
    let b = start_with(|c| c.num_partitions = 2);
    let boot = b.bootstrap_servers();
    let script = peers_dir().join("kp_produce.py");
    for acks in ["0", "1", "all"] {
        let topic = format!("kp-acks-{acks}");
        let out = python(&[
            script.to_str().unwrap_or_default(),
            &boot,
            &topic,
            "500",
            acks,
            &topic,
        ]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("acked 500"),
            "acks={acks}: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let want: Vec<String> = (0..500).map(|i| format!("{topic}-{i:06}")).collect();
        let seen = consume(
            &boot,
            &topic,
            &format!("g-{topic}"),
            500,
            Duration::from_secs(30),
            &[],
        );
        assert_exactly_once(&want, &seen);
    }
}

/// A kafka-python consumer child whose stdout lines arrive on a channel.
pub struct Member {
    pub child: Child,
    pub lines: mpsc::Receiver<String>,
}

pub fn spawn_member(boot: &str, topic: &str, group: &str, seconds: u64) -> Member {
    let script = peers_dir().join("kp_consume.py");
    let mut child = Command::new("python3")
        .arg(script)
        .args([boot, topic, group, &seconds.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 runs");
    let (tx, rx) = mpsc::channel();
    let out = child.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    Member { child, lines: rx }
}

#[test]
fn kafka_python_consumes_in_a_group_of_three() {
    if !require_peer(have_kafka_python(), "python3 with kafka-python") {
        return;
    }
    // Kafka's default initial delay, so the three members land in one generation.
    let b = start_with(|c| {
        c.num_partitions = 3;
        c.group_initial_rebalance_delay_ms = 3000;
    });
    let boot = b.bootstrap_servers();
    let vals = values("kp-group", 900);
    assert_eq!(produce(&boot, "kp-group", &vals, &[]), (900, 0));
    let members: Vec<Member> = (0..3)
        .map(|_| spawn_member(&boot, "kp-group", "kpg", 25))
        .collect();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut per_member = [0usize; 3];
    let deadline = Instant::now() + Duration::from_secs(40);
    while seen.len() < vals.len() && Instant::now() < deadline {
        for (i, m) in members.iter().enumerate() {
            while let Ok(line) = m.lines.try_recv() {
                if let Some(v) = line
                    .strip_prefix("msg ")
                    .and_then(|r| r.split_once(' '))
                    .map(|(_, v)| v.to_string())
                {
                    *seen.entry(v).or_default() += 1;
                    per_member[i] += 1;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    for mut m in members {
        kill9(&mut m.child);
    }
    let missing = vals.iter().filter(|v| !seen.contains_key(*v)).count();
    assert_eq!(missing, 0, "records not consumed by the group");
    assert!(
        per_member.iter().all(|&n| n > 0),
        "every member got a share: {per_member:?}"
    );
}
